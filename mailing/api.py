"""Mailing HTTP API: thin views (validate, call one service, serialize)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import scopes
from core.access import organization_get_for_principal
from core.auth import IntegrationPrincipal
from core.errors import ApplicationError
from core.logging import get_logger
from core.models import Organization
from core.pagination import LinkHeaderCursorPagination
from mailing import selectors, services
from mailing.models import Template
from mailing.serializers import (
    MailingCountsSerializer,
    MailingMessageSerializer,
    MailingSerializer,
    MailingStatsSerializer,
    MailingWriteSerializer,
    NotificationSerializer,
    TemplateSerializer,
    TemplateWriteSerializer,
)

log = get_logger(__name__)

ORGANIZATION_PARAM = OpenApiParameter(
    "organization", str, description="Organization slug (one you belong to).", required=False
)


class IdPagination(LinkHeaderCursorPagination):
    ordering = "-id"


class MessagePagination(LinkHeaderCursorPagination):
    ordering = "delivery_id"


def _org_param(request: Request) -> str | None:
    slug = request.query_params.get("organization")
    if slug is not None:
        organization_get_for_principal(principal=request.user, slug=slug)  # 404 if not a member
    return slug


def _organization_for_create(request: Request, data: dict[str, Any]) -> Organization:
    slug = data.pop("organization", None)
    if isinstance(request.user, IntegrationPrincipal):
        return request.user.organization
    if slug is None:
        raise ApplicationError(
            "Which organization?", fields={"organization": ["This field is required."]}
        )
    return organization_get_for_principal(principal=request.user, slug=slug)


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
            "Unknown template.", fields={"template": ["Template not found."]}
        ) from exc


def _paginate(
    view: APIView,
    request: Request,
    qs: Any,
    paginator_class: type,
    serializer: type,
    context: dict[str, Any] | None = None,
    counts: bool = False,
) -> Response:
    paginator = paginator_class()
    page = paginator.paginate_queryset(qs, request, view=view)
    ctx = {"request": request, **(context or {})}
    if counts:
        ctx["counts"] = selectors.mailings_counts(mailing_ids=[m.pk for m in page])
    return paginator.get_paginated_response(serializer(page, many=True, context=ctx).data)


# --- templates ------------------------------------------------------------------------


class TemplateListView(APIView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.ADMIN}

    @extend_schema(parameters=[ORGANIZATION_PARAM], responses=TemplateSerializer(many=True))
    def get(self, request: Request) -> Response:
        qs = selectors.template_list(principal=request.user, organization_slug=_org_param(request))
        return _paginate(self, request, qs, IdPagination, TemplateSerializer)

    @extend_schema(request=TemplateWriteSerializer, responses={201: TemplateSerializer})
    def post(self, request: Request) -> Response:
        body = TemplateWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        organization = _organization_for_create(request, data)
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
        return Response(
            TemplateSerializer(services.template_update(template=template, data=data)).data
        )

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.template_delete(template=self._get(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- mailings -------------------------------------------------------------------------


class MailingListView(APIView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.ADMIN}

    @extend_schema(
        parameters=[ORGANIZATION_PARAM],
        responses=MailingSerializer(many=True),
        summary="Mailings, newest first (cursor in the Link header)",
    )
    def get(self, request: Request) -> Response:
        qs = selectors.mailing_list(principal=request.user, organization_slug=_org_param(request))
        if status_filter := request.query_params.get("status"):
            qs = qs.filter(status=status_filter)
        return _paginate(self, request, qs, IdPagination, MailingSerializer)

    @extend_schema(request=MailingWriteSerializer, responses={201: MailingSerializer})
    def post(self, request: Request) -> Response:
        body = MailingWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        organization = _organization_for_create(request, data)
        _template_in(request, data)
        mailing = services.mailing_create(
            organization=organization,
            created_by=request.user if not isinstance(request.user, IntegrationPrincipal) else None,
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


class MailingMessagesView(APIView):
    required_scopes = {"GET": scopes.READ}

    @extend_schema(
        responses=MailingMessageSerializer(many=True),
        summary="Messages of one mailing with their status and attempts (Link header pages)",
    )
    def get(self, request: Request, pk: int) -> Response:
        mailing = selectors.mailing_get_for_principal(principal=request.user, pk=pk)
        qs = selectors.message_list(mailing=mailing)
        if status_filter := request.query_params.get("status"):
            qs = qs.filter(delivery__status=status_filter)
        return _paginate(self, request, qs, MessagePagination, MailingMessageSerializer)


class MailingOverallStatsView(APIView):
    required_scopes = {"GET": scopes.READ}

    @extend_schema(
        parameters=[ORGANIZATION_PARAM],
        responses=MailingCountsSerializer(many=True),
        summary="Every mailing with its message counts grouped by status",
    )
    def get(self, request: Request) -> Response:
        qs = selectors.mailing_list(principal=request.user, organization_slug=_org_param(request))
        return _paginate(self, request, qs, IdPagination, MailingCountsSerializer, counts=True)


# --- notifications --------------------------------------------------------------------


class NotificationView(APIView):
    required_scopes = {"POST": scopes.ADMIN}

    @extend_schema(
        request=NotificationSerializer,
        responses={201: MailingSerializer},
        summary="Send now to explicit clients and/or tags (merged), with a template or text",
    )
    def post(self, request: Request) -> Response:
        body = NotificationSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        organization = _organization_for_create(request, data)
        _template_in(request, data)
        mailing = services.notification_send(organization=organization, **data)
        return Response(MailingSerializer(mailing).data, status=status.HTTP_201_CREATED)
