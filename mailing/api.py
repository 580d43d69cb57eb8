"""Mailing HTTP API: thin views (validate, call one service, serialize)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import scopes
from core.access import is_admin, is_agent
from core.api import ListView, slug_of
from core.errors import ApplicationError
from core.logging import get_logger
from core.models import Organization
from core.scope import ORGANIZATION_PARAM, create_in_organization
from mailing import selectors, services
from mailing.models import Mailing, Template
from mailing.serializers import (
    MailingCountsSerializer,
    MailingMessageSerializer,
    MailingSerializer,
    MailingStatsSerializer,
    MailingWriteSerializer,
    NotificationSerializer,
    PreviewRequestSerializer,
    PreviewSerializer,
    TemplateSerializer,
    TemplateWriteSerializer,
)
from mailing.services.variants import template_preview_all

log = get_logger(__name__)


def _template_in(request: Request, data: dict[str, Any]) -> None:
    """Replace a template id by the template, if the caller can see it (else a 400)."""
    if data.get("template") is None:
        return
    try:
        data["template"] = selectors.template_get_for_principal(
            principal=request.user, pk=data["template"]
        )
    except ApplicationError as exc:
        raise ApplicationError(
            gettext("Unknown template."), fields={"template": [gettext("Template not found.")]}
        ) from exc


def _html_check(request: Request, organization: Organization, data: dict[str, Any]) -> None:
    """A template's HTML part is markup sent as is to every recipient (only placeholder
    values are escaped): only an organization admin may write it, not an agent or an
    integration key (a leaked key must not be able to mail arbitrary HTML)."""
    if data.get("html_body") and not is_admin(user=request.user, organization=organization):
        raise ApplicationError(
            gettext("Only an organization admin may write a template's HTML."),
            code="forbidden",
            status_code=403,
            fields={"html_body": [gettext("Only an organization admin may write HTML.")]},
        )


# --- templates ------------------------------------------------------------------------


class TemplateListView(ListView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.ADMIN}
    serializer_class = TemplateSerializer

    def list_queryset(self, organization: Organization | None) -> Any:
        return selectors.template_list(
            principal=self.request.user, organization_slug=slug_of(organization)
        )

    @extend_schema(parameters=[ORGANIZATION_PARAM])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=TemplateWriteSerializer, responses={201: TemplateSerializer})
    def post(self, request: Request) -> Response:
        organization, data = create_in_organization(request, TemplateWriteSerializer)
        _html_check(request, organization, data)
        template = services.template_create(organization=organization, **data)
        return Response(TemplateSerializer(template).data, status=status.HTTP_201_CREATED)


class TemplateDetailView(APIView):
    required_scopes = {"GET": scopes.READ, "PATCH": scopes.ADMIN, "DELETE": scopes.ADMIN}

    def _get(self, request: Request, pk: int) -> Template:
        return selectors.template_get_for_principal(principal=request.user, pk=pk)

    @extend_schema(responses=TemplateSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(TemplateSerializer(self._get(request, pk)).data)

    @extend_schema(request=TemplateWriteSerializer, responses=TemplateSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        template = self._get(request, pk)
        body = TemplateWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        data.pop("organization", None)
        _html_check(request, template.organization, data)
        return Response(
            TemplateSerializer(services.template_update(template=template, data=data)).data
        )

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.template_delete(template=self._get(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TemplatePreviewView(APIView):
    """A real client's rendering of a template (the console's preview): the same renderer
    and context provider as the mailing itself."""

    required_scopes = {"POST": scopes.READ}

    @extend_schema(request=PreviewRequestSerializer, responses=PreviewSerializer)
    def post(self, request: Request, pk: int) -> Response:
        template = selectors.template_get_for_principal(principal=request.user, pk=pk)
        body = PreviewRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        values = {str(k): str(v) for k, v in (data.get("context") or {}).items()}
        preview = template_preview_all(
            template=template, client_id=data["client"], values=values, now=timezone.now()
        )
        if preview is None:
            raise ApplicationError(
                gettext("Unknown client."), fields={"client": [gettext("Client not found.")]}
            )
        return Response(PreviewSerializer(preview).data)


# --- mailings -------------------------------------------------------------------------


class MailingListView(ListView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.ADMIN}
    serializer_class = MailingSerializer

    def list_queryset(self, organization: Organization | None) -> Any:
        qs = selectors.mailing_list(
            principal=self.request.user, organization_slug=slug_of(organization)
        )
        if status_filter := self.request.query_params.get("status"):
            qs = qs.filter(status=status_filter)
        return qs

    @extend_schema(
        parameters=[
            ORGANIZATION_PARAM,
            OpenApiParameter("status", str, required=False, enum=Mailing.Status.values),
        ],
        summary="Mailings, newest first (cursor in the Link header)",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=MailingWriteSerializer, responses={201: MailingSerializer})
    def post(self, request: Request) -> Response:
        organization, data = create_in_organization(request, MailingWriteSerializer)
        _template_in(request, data)
        mailing = services.mailing_create(
            organization=organization,
            created_by=request.user if is_agent(request.user) else None,
            **data,
        )
        return Response(MailingSerializer(mailing).data, status=status.HTTP_201_CREATED)


class MailingDetailView(APIView):
    required_scopes = {"GET": scopes.READ, "PATCH": scopes.ADMIN, "DELETE": scopes.ADMIN}

    @extend_schema(responses=MailingCountsSerializer)
    def get(self, request: Request, pk: int) -> Response:
        mailing = selectors.mailing_get_for_principal(principal=request.user, pk=pk)
        counts = {mailing.pk: selectors.mailing_counts(mailing_id=mailing.pk)}
        return Response(MailingCountsSerializer(mailing, context={"counts": counts}).data)

    @extend_schema(request=MailingWriteSerializer, responses=MailingSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        mailing = selectors.mailing_get_for_principal(principal=request.user, pk=pk)
        body = MailingWriteSerializer(mailing, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        data.pop("organization", None)  # a mailing does not move between organizations
        _template_in(request, data)
        return Response(MailingSerializer(services.mailing_update(mailing=mailing, data=data)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.mailing_delete(
            mailing=selectors.mailing_get_for_principal(principal=request.user, pk=pk)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class MailingCancelView(APIView):
    required_scopes = {"POST": scopes.ADMIN}

    @extend_schema(request=None, responses=MailingSerializer, summary="Stop sending a mailing")
    def post(self, request: Request, pk: int) -> Response:
        mailing = selectors.mailing_get_for_principal(principal=request.user, pk=pk)
        return Response(MailingSerializer(services.mailing_cancel(mailing=mailing)).data)


class MailingStatsView(APIView):
    required_scopes = {"GET": scopes.READ}

    @extend_schema(
        responses=MailingStatsSerializer,
        summary="One mailing: counts by status, attempts, timing and throughput",
    )
    def get(self, request: Request, pk: int) -> Response:
        mailing = selectors.mailing_get_for_principal(principal=request.user, pk=pk)
        return Response(MailingStatsSerializer(selectors.mailing_stats(mailing=mailing)).data)


class MailingMessagesView(ListView):
    required_scopes = {"GET": scopes.READ}
    serializer_class = MailingMessageSerializer
    ordering = "delivery_id"

    def get_queryset(self) -> Any:
        mailing = selectors.mailing_get_for_principal(
            principal=self.request.user, pk=self.kwargs["pk"]
        )
        qs = selectors.message_list(mailing=mailing)
        if status_filter := self.request.query_params.get("status"):
            qs = qs.filter(delivery__status=status_filter)
        return qs

    @extend_schema(
        parameters=[OpenApiParameter("status", str, required=False)],
        summary="Messages of one mailing with their status and attempts (Link header pages)",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class MailingOverallStatsView(ListView):
    required_scopes = {"GET": scopes.READ}
    serializer_class = MailingCountsSerializer

    def list_queryset(self, organization: Organization | None) -> Any:
        return selectors.mailing_list(
            principal=self.request.user, organization_slug=slug_of(organization)
        )

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        # The page's counts in one query, not one per mailing.
        page = args[0] if args else []
        kwargs["context"] = {
            **self.get_serializer_context(),
            "counts": selectors.mailings_counts(mailing_ids=[m.pk for m in page]),
        }
        return MailingCountsSerializer(*args, **kwargs)

    @extend_schema(
        parameters=[ORGANIZATION_PARAM],
        summary="Every mailing with its message counts grouped by status",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


# --- notifications --------------------------------------------------------------------


class NotificationView(APIView):
    required_scopes = {"POST": scopes.ADMIN}

    @extend_schema(
        request=NotificationSerializer,
        responses={201: MailingSerializer},
        summary="Send now to explicit clients and/or tags (merged), with a template or text",
    )
    def post(self, request: Request) -> Response:
        organization, data = create_in_organization(request, NotificationSerializer)
        _template_in(request, data)
        mailing = services.notification_send(organization=organization, **data)
        return Response(MailingSerializer(mailing).data, status=status.HTTP_201_CREATED)
