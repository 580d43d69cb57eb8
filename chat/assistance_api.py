"""Assistance HTTP API: thin views (validate, call one service, serialize)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import assistance
from chat.models import AssistanceRequest, AssistanceTopic
from core import scopes
from core.access import is_admin, organization_get_for_principal
from core.auth import IntegrationPrincipal
from core.errors import ApplicationError
from core.models import Organization
from core.pagination import LinkHeaderCursorPagination
from core.validators import phone_validator


class AssistanceCreateSerializer(serializers.Serializer[Any]):
    topic = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    phone = serializers.CharField(required=False, validators=[phone_validator])
    client = serializers.UUIDField(required=False, help_text="The client's uuid.")
    help_desk = serializers.UUIDField(required=False)
    organization = serializers.SlugField(
        required=False, help_text="Only with an agent key (integration keys have one)."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "phone" in attrs and "client" in attrs:
            raise serializers.ValidationError(
                {"client": ["Give the phone or the client, not both."]}
            )
        return attrs


class AssistanceRequestSerializer(serializers.Serializer[Any]):
    """Read shape; built by `assistance.assistance_request_data` (also the event payload)."""

    id = serializers.UUIDField()
    organization = serializers.CharField()
    topic = serializers.CharField()
    team = serializers.CharField(allow_null=True)
    description = serializers.CharField()
    status = serializers.ChoiceField(choices=AssistanceRequest.Status.choices)
    client = serializers.UUIDField(allow_null=True)
    help_desk = serializers.UUIDField(allow_null=True)
    assignee = serializers.CharField(allow_null=True)
    accepted_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    routed_at = serializers.DateTimeField(allow_null=True)
    accepted_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, instance: AssistanceRequest) -> dict[str, Any]:
        return assistance.assistance_request_data(instance)


class AssistanceCreatedSerializer(AssistanceRequestSerializer):
    """The 202 of `POST /assistance/`: the request, plus the seed's `event` key."""

    event = serializers.UUIDField(help_text="The seed's created event id: equal to `id`.")

    def to_representation(self, instance: AssistanceRequest) -> dict[str, Any]:
        return {**assistance.assistance_request_data(instance), "event": str(instance.uuid)}


class TopicSerializer(serializers.ModelSerializer[AssistanceTopic]):
    organization: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = AssistanceTopic
        fields = ["id", "organization", "name", "team", "webhook_url", "has_secret", "created_at"]

    def get_has_secret(self, obj: AssistanceTopic) -> bool:
        return bool(obj.webhook_secret)


class TopicWriteSerializer(serializers.Serializer[Any]):
    organization = serializers.SlugField(required=False, help_text="Only with an agent key.")
    name = serializers.SlugField(max_length=49)
    team = serializers.SlugField(required=False, allow_null=True, help_text="Team slug.")
    webhook_url = serializers.URLField(required=False, allow_blank=True, max_length=500)
    webhook_secret = serializers.CharField(
        required=False, allow_blank=True, max_length=200, write_only=True
    )


class AssistancePagination(LinkHeaderCursorPagination):
    ordering = "-id"


def _organization(request: Request, slug: str | None) -> Organization:
    if isinstance(request.user, IntegrationPrincipal):
        return request.user.organization
    if not slug:
        raise ApplicationError(
            "Which organization?", fields={"organization": ["This field is required."]}
        )
    return organization_get_for_principal(principal=request.user, slug=slug)


def _require_admin(request: Request, organization: Organization) -> None:
    if isinstance(request.user, IntegrationPrincipal):
        return
    if not is_admin(user=request.user, organization=organization):
        raise ApplicationError("Only an admin may do this.", code="forbidden", status_code=403)


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
        organization = _organization(request, data.get("organization"))
        created = assistance.assistance_request_create(
            organization=organization,
            topic=data["topic"],
            description=data.get("description", ""),
            client_phone=data.get("phone"),
            client_uuid=data.get("client"),
            help_desk_uuid=data.get("help_desk"),
        )
        return Response(AssistanceCreatedSerializer(created).data, status=status.HTTP_202_ACCEPTED)


class AssistanceListView(APIView):
    required_scopes = {"GET": scopes.READ}

    @extend_schema(
        parameters=[
            OpenApiParameter("organization", str, required=False),
            OpenApiParameter("status", str, required=False, enum=AssistanceRequest.Status.values),
        ],
        responses=AssistanceRequestSerializer(many=True),
        summary="Assistance requests, newest first (cursor in the Link header)",
    )
    def get(self, request: Request) -> Response:
        slug = request.query_params.get("organization")
        if slug is not None:
            organization_get_for_principal(principal=request.user, slug=slug)
        wanted = request.query_params.get("status")
        if wanted and wanted not in AssistanceRequest.Status.values:
            raise ApplicationError(
                "Unknown status.", fields={"status": [f"One of {AssistanceRequest.Status.values}."]}
            )
        qs = assistance.assistance_request_list(
            principal=request.user, organization_slug=slug, status=wanted
        )
        paginator = AssistancePagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(
            [assistance.assistance_request_data(r) for r in page or []]
        )


class AssistanceDetailView(APIView):
    required_scopes = {"GET": scopes.READ}

    @extend_schema(responses=AssistanceRequestSerializer)
    def get(self, request: Request, uuid: str) -> Response:
        found = assistance.assistance_request_get_for_principal(principal=request.user, uuid=uuid)
        return Response(assistance.assistance_request_data(found))


class AssistanceAcceptView(APIView):
    required_scopes = {"POST": scopes.AGENT}

    @extend_schema(
        request=None,
        responses={200: AssistanceRequestSerializer},
        summary="Accept a request (agents; first wins, then 409)",
    )
    def post(self, request: Request, uuid: str) -> Response:
        if isinstance(request.user, IntegrationPrincipal):
            raise ApplicationError(
                "Agents accept requests; use an agent key.", code="forbidden", status_code=403
            )
        found = assistance.assistance_request_get_for_principal(principal=request.user, uuid=uuid)
        accepted = assistance.assistance_request_accept(request=found, user=request.user)
        return Response(assistance.assistance_request_data(accepted))


class TopicListView(APIView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.ADMIN}

    @extend_schema(
        parameters=[OpenApiParameter("organization", str, required=False)],
        responses=TopicSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        slug = request.query_params.get("organization")
        if slug is not None:
            organization_get_for_principal(principal=request.user, slug=slug)
        qs = assistance.assistance_topic_list(principal=request.user, organization_slug=slug)
        return Response(TopicSerializer(qs, many=True).data)

    @extend_schema(request=TopicWriteSerializer, responses={201: TopicSerializer})
    def post(self, request: Request) -> Response:
        body = TopicWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        organization = _organization(request, data.get("organization"))
        _require_admin(request, organization)
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

    @extend_schema(responses=TopicSerializer)
    def get(self, request: Request, pk: int) -> Response:
        topic = assistance.assistance_topic_get_for_principal(principal=request.user, pk=pk)
        return Response(TopicSerializer(topic).data)

    @extend_schema(request=TopicWriteSerializer, responses=TopicSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        topic = assistance.assistance_topic_get_for_principal(principal=request.user, pk=pk)
        _require_admin(request, topic.organization)
        body = TopicWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        data.pop("organization", None)
        topic = assistance.assistance_topic_update(topic=topic, data=data)
        return Response(TopicSerializer(topic).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        topic = assistance.assistance_topic_get_for_principal(principal=request.user, pk=pk)
        _require_admin(request, topic.organization)
        assistance.assistance_topic_delete(topic=topic)
        return Response(status=status.HTTP_204_NO_CONTENT)
