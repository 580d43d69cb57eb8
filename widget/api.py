"""Agents' and admins' side of the widget: web inboxes (admins write), the visitor
behind a web conversation, and the satisfaction ratings."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import permissions, scopes
from core.api import ListView, slug_of
from core.models import Organization
from core.scope import ORGANIZATION_PARAM, create_in_organization, organization_scope
from widget import inboxes, selectors
from widget.models import WebInbox
from widget.representations import (
    VisitorContextSerializer,
    WebInboxSerializer,
    WebInboxWithSecretSerializer,
    rating_statistics,
)
from widget.serializers import RotateSerializer, WebInboxWriteSerializer

ADMIN_WRITES = permissions.with_default(permissions.IsOrganizationAdmin)
# Reading an inbox's configuration (and rotating its secret) is an admin's business:
# members see inboxes in the console but only admins change them.


class WebInboxListView(ListView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.ADMIN}
    permission_classes = ADMIN_WRITES
    serializer_class = WebInboxSerializer
    ordering = ("id",)

    def list_queryset(self, organization: Organization | None) -> Any:
        return selectors.web_inbox_list(
            principal=self.request.user, organization_slug=slug_of(organization)
        )

    @extend_schema(parameters=[ORGANIZATION_PARAM], summary="Website inboxes (widget)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=WebInboxWriteSerializer, responses={201: WebInboxWithSecretSerializer})
    def post(self, request: Request) -> Response:
        organization, data = create_in_organization(request, WebInboxWriteSerializer, view=self)
        inbox = inboxes.web_inbox_create(organization=organization, **data)
        return Response(WebInboxWithSecretSerializer(inbox).data, status=status.HTTP_201_CREATED)


class WebInboxDetailView(APIView):
    required_scopes = {"GET": scopes.READ, "PATCH": scopes.ADMIN, "DELETE": scopes.ADMIN}
    permission_classes = ADMIN_WRITES

    def get_object(self) -> WebInbox:
        inbox = selectors.web_inbox_get_for_principal(
            principal=self.request.user, pk=self.kwargs["pk"]
        )
        self.check_object_permissions(self.request, inbox)
        return inbox

    @extend_schema(responses=WebInboxSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(WebInboxSerializer(self.get_object()).data)

    @extend_schema(request=WebInboxWriteSerializer, responses=WebInboxSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        inbox = self.get_object()
        body = WebInboxWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        data.pop("organization", None)
        inbox = inboxes.web_inbox_update(web_inbox=inbox, data=data)
        return Response(WebInboxSerializer(inbox).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        inboxes.web_inbox_delete(web_inbox=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebInboxRotateView(APIView):
    required_scopes = {"POST": scopes.ADMIN}
    permission_classes = permissions.with_default(permissions.IsOrganizationAdmin)

    @extend_schema(
        request=RotateSerializer,
        responses=WebInboxWithSecretSerializer,
        summary="New identity secret (and, if asked, a new public token); shown once",
    )
    def post(self, request: Request, pk: int) -> Response:
        inbox = selectors.web_inbox_get_for_principal(principal=request.user, pk=pk)
        self.check_object_permissions(request, inbox)
        body = RotateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        inbox = inboxes.web_inbox_rotate(web_inbox=inbox, **body.validated_data)
        return Response(WebInboxWithSecretSerializer(inbox).data)


class RatingStatisticsView(APIView):
    required_scopes = {"GET": scopes.READ}

    @extend_schema(
        parameters=[ORGANIZATION_PARAM],
        responses=inline_serializer(
            "RatingStatistics",
            {
                "count": serializers.IntegerField(),
                "average": serializers.FloatField(allow_null=True),
                "distribution": serializers.DictField(child=serializers.IntegerField()),
            },
        ),
        summary="Satisfaction: count, average",
    )
    def get(self, request: Request) -> Response:
        organization = organization_scope(request)
        ratings = selectors.rating_list(
            principal=request.user, organization_slug=slug_of(organization)
        )
        return Response(rating_statistics(ratings))


class HelpDeskVisitorView(APIView):
    required_scopes = {"GET": scopes.READ}

    @extend_schema(responses=VisitorContextSerializer, summary="The web visitor's context")
    def get(self, request: Request, uuid: str) -> Response:
        visitor = selectors.visitor_get_for_help_desk(principal=request.user, uuid=uuid)
        rating = selectors.rating_of_help_desk(help_desk_uuid=uuid)
        body = dict(VisitorContextSerializer(visitor).data)
        # The conversation's satisfaction rating, once the visitor left one.
        body["rating"] = (
            {"score": rating.score, "comment": rating.comment, "created_at": rating.created_at}
            if rating is not None
            else None
        )
        return Response(body)
