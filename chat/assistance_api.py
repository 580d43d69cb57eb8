"""Assistance HTTP API: thin views (validate, call one service, serialize)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import assistance
from chat.models import AssistanceRequest, AssistanceTopic
from chat.representations import AssistanceRequestSerializer
from chat.serializers import (
    AssistanceCreatedSerializer,
    AssistanceCreateSerializer,
    TopicSerializer,
    TopicWriteSerializer,
)
from core import permissions, scopes
from core.api import ListView, slug_of
from core.errors import ApplicationError
from core.models import Organization
from core.scope import ORGANIZATION_PARAM, organization_scope

ADMIN_WRITES = permissions.with_default(permissions.IsOrganizationAdmin)


class AssistanceCreateView(APIView):
    required_scopes = {"POST": scopes.ASSISTANCE}

    @extend_schema(
        request=AssistanceCreateSerializer,
        responses={202: AssistanceCreatedSerializer},
        summary="A bot asks for a human on a topic (seed 000); routed by a job",
    )
    def post(self, request: Request) -> Response:
        body = AssistanceCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        organization = organization_scope(request, slug=data.get("organization"), required=True)
        created = assistance.assistance_request_create(
            organization=organization,
            topic=data["topic"],
            description=data.get("description", ""),
            client_phone=data.get("phone"),
            client_uuid=data.get("client"),
            help_desk_uuid=data.get("help_desk"),
        )
        return Response(AssistanceCreatedSerializer(created).data, status=status.HTTP_202_ACCEPTED)


class AssistanceListView(ListView):
    required_scopes = {"GET": scopes.READ}
    serializer_class = AssistanceRequestSerializer

    def list_queryset(self, organization: Organization | None) -> Any:
        wanted = self.request.query_params.get("status")
        if wanted and wanted not in AssistanceRequest.Status.values:
            raise ApplicationError(
                gettext("Unknown status."),
                fields={
                    "status": [
                        gettext("One of %(values)s.")
                        % {"values": ", ".join(AssistanceRequest.Status.values)}
                    ]
                },
            )
        return assistance.assistance_request_list(
            principal=self.request.user, organization_slug=slug_of(organization), status=wanted
        )

    @extend_schema(
        parameters=[
            ORGANIZATION_PARAM,
            OpenApiParameter("status", str, required=False, enum=AssistanceRequest.Status.values),
        ],
        summary="Assistance requests, newest first (cursor in the Link header)",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class AssistanceDetailView(APIView):
    required_scopes = {"GET": scopes.READ}

    @extend_schema(responses=AssistanceRequestSerializer)
    def get(self, request: Request, uuid: str) -> Response:
        found = assistance.assistance_request_get_for_principal(principal=request.user, uuid=uuid)
        return Response(AssistanceRequestSerializer(found).data)


class AssistanceAcceptView(APIView):
    required_scopes = {"POST": scopes.AGENT}
    permission_classes = permissions.with_default(permissions.IsAgent)

    @extend_schema(
        request=None,
        responses={200: AssistanceRequestSerializer},
        summary="Accept a request (agents; first wins, then 409)",
    )
    def post(self, request: Request, uuid: str) -> Response:
        found = assistance.assistance_request_get_for_principal(principal=request.user, uuid=uuid)
        accepted = assistance.assistance_request_accept(request=found, user=request.user)
        return Response(AssistanceRequestSerializer(accepted).data)


class TopicListView(ListView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.ADMIN}
    permission_classes = ADMIN_WRITES
    serializer_class = TopicSerializer

    def list_queryset(self, organization: Organization | None) -> Any:
        return assistance.assistance_topic_list(
            principal=self.request.user, organization_slug=slug_of(organization)
        )

    @extend_schema(parameters=[ORGANIZATION_PARAM])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=TopicWriteSerializer, responses={201: TopicSerializer})
    def post(self, request: Request) -> Response:
        body = TopicWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        organization = organization_scope(request, slug=data.get("organization"), required=True)
        self.check_object_permissions(request, organization)
        topic = assistance.assistance_topic_create(
            organization=organization,
            name=data["name"],
            team_slug=data.get("team"),
            webhook_url=data.get("webhook_url", ""),
            webhook_secret=data.get("webhook_secret", ""),
        )
        return Response(TopicSerializer(topic).data, status=status.HTTP_201_CREATED)


class TopicDetailView(APIView):
    required_scopes = {"GET": scopes.READ, "PATCH": scopes.ADMIN, "DELETE": scopes.ADMIN}
    permission_classes = ADMIN_WRITES

    def get_object(self) -> AssistanceTopic:
        topic = assistance.assistance_topic_get_for_principal(
            principal=self.request.user, pk=self.kwargs["pk"]
        )
        self.check_object_permissions(self.request, topic)
        return topic

    @extend_schema(responses=TopicSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(TopicSerializer(self.get_object()).data)

    @extend_schema(request=TopicWriteSerializer, responses=TopicSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        topic = self.get_object()
        body = TopicWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        data.pop("organization", None)
        topic = assistance.assistance_topic_update(topic=topic, data=data)
        return Response(TopicSerializer(topic).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        assistance.assistance_topic_delete(topic=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
