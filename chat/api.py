"""Chat HTTP API: thin views (validate, call one service, serialize)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors, services
from chat.serializers import (
    ClientSerializer,
    ClientWriteSerializer,
    HelpDeskCreateSerializer,
    HelpDeskSerializer,
    HelpDeskUpdateSerializer,
    InboundMessageSerializer,
    MessageSerializer,
    ReceiptResultSerializer,
    ReceiptSerializer,
    SendMessageSerializer,
)
from core import scopes
from core.access import organization_get_for_principal
from core.auth import IntegrationPrincipal
from core.errors import ApplicationError
from core.models import slug_validator
from core.pagination import LinkHeaderCursorPagination
from core.validators import tag_validator

ORGANIZATION_PARAM = OpenApiParameter(
    "organization", str, description="Organization slug (one you belong to).", required=False
)


class HelpDeskPagination(LinkHeaderCursorPagination):
    ordering = ("-last_activity_at", "-id")


class HistoryPagination(LinkHeaderCursorPagination):
    ordering = ("-created_at", "-id")


class ClientPagination(LinkHeaderCursorPagination):
    ordering = ("-updated_at", "-id")


def _org_param(request: Request) -> str | None:
    slug = request.query_params.get("organization")
    if slug is not None:
        # Checked before any query: PostgreSQL refuses a NUL byte in a parameter (a 500).
        try:
            slug_validator(slug)
        except DjangoValidationError as exc:
            raise ApplicationError(
                "Organization not found.", code="not_found", status_code=404
            ) from exc
        organization_get_for_principal(principal=request.user, slug=slug)  # 404 if not a member
    return slug


def _paginate(
    view: APIView, request: Request, qs: Any, paginator_class: type, serializer: type
) -> Response:
    paginator = paginator_class()
    page = paginator.paginate_queryset(qs, request, view=view)
    return paginator.get_paginated_response(
        serializer(page, many=True, context={"request": request}).data
    )


class HelpDeskListView(APIView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.AGENT}

    @extend_schema(
        parameters=[ORGANIZATION_PARAM],
        responses=HelpDeskSerializer(many=True),
        summary="Help desks, newest activity first (cursor in the Link header)",
    )
    def get(self, request: Request) -> Response:
        qs = selectors.help_desk_list(principal=request.user, organization_slug=_org_param(request))
        return _paginate(self, request, qs, HelpDeskPagination, HelpDeskSerializer)

    @extend_schema(
        request=HelpDeskCreateSerializer,
        responses={201: HelpDeskSerializer, 200: HelpDeskSerializer},
    )
    def post(self, request: Request) -> Response:
        body = HelpDeskCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        client = selectors.client_get_for_principal(
            principal=request.user, uuid=body.validated_data["client"]
        )
        help_desk, created = services.help_desk_open(client=client)
        return Response(
            HelpDeskSerializer(help_desk).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class HelpDeskDetailView(APIView):
    required_scopes = {"GET": scopes.READ, "PATCH": scopes.AGENT, "DELETE": scopes.AGENT}

    @extend_schema(responses=HelpDeskSerializer)
    def get(self, request: Request, uuid: str) -> Response:
        help_desk = selectors.help_desk_get_for_principal(principal=request.user, uuid=uuid)
        return Response(HelpDeskSerializer(help_desk).data)

    @extend_schema(request=HelpDeskUpdateSerializer, responses=HelpDeskSerializer)
    def patch(self, request: Request, uuid: str) -> Response:
        body = HelpDeskUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            help_desk = selectors.help_desk_get_for_principal(
                principal=request.user, uuid=uuid, lock=True
            )
            help_desk = services.help_desk_update(help_desk=help_desk, data=body.validated_data)
        return Response(HelpDeskSerializer(help_desk).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, uuid: str) -> Response:
        help_desk = selectors.help_desk_get_for_principal(principal=request.user, uuid=uuid)
        services.help_desk_delete(help_desk=help_desk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class HelpDeskHistoryView(APIView):
    required_scopes = {"GET": scopes.READ}

    @extend_schema(
        responses=MessageSerializer(many=True),
        summary="Messages of one help desk, newest first (older pages via the Link header)",
    )
    def get(self, request: Request, uuid: str) -> Response:
        help_desk = selectors.help_desk_get_for_principal(principal=request.user, uuid=uuid)
        return _paginate(
            self,
            request,
            selectors.message_list(help_desk=help_desk),
            HistoryPagination,
            MessageSerializer,
        )


class HelpDeskReadView(APIView):
    required_scopes = {"POST": scopes.AGENT}

    @extend_schema(request=None, responses=HelpDeskSerializer, summary="Mark a help desk read")
    def post(self, request: Request, uuid: str) -> Response:
        help_desk = selectors.help_desk_get_for_principal(principal=request.user, uuid=uuid)
        return Response(HelpDeskSerializer(services.help_desk_mark_read(help_desk=help_desk)).data)


class SendMessageView(APIView):
    required_scopes = {"POST": scopes.AGENT}
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(request=SendMessageSerializer, responses={201: MessageSerializer})
    def post(self, request: Request) -> Response:
        if isinstance(request.user, IntegrationPrincipal):
            raise ApplicationError(
                "Agents send messages; use an agent key.", code="forbidden", status_code=403
            )
        body = SendMessageSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            help_desk = selectors.help_desk_get_for_principal(
                principal=request.user, uuid=body.validated_data["help_desk"]
            )
        except ApplicationError as exc:
            raise ApplicationError(
                "Unknown help desk.", fields={"help_desk": ["Help desk not found."]}
            ) from exc
        message = services.message_create(
            help_desk=help_desk,
            text=body.validated_data.get("message", ""),
            file=body.validated_data.get("file"),
            sender=request.user,
        )
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class InboundMessageView(APIView):
    required_scopes = {"POST": scopes.INBOUND}

    @extend_schema(
        request=InboundMessageSerializer,
        responses={201: MessageSerializer},
        summary="A client's message arrives (channel provider or integration key)",
    )
    def post(self, request: Request) -> Response:
        body = InboundMessageSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if isinstance(request.user, IntegrationPrincipal):
            organization = request.user.organization
        elif "organization" not in data:
            raise ApplicationError(
                "Which organization?", fields={"organization": ["This field is required."]}
            )
        else:
            organization = organization_get_for_principal(
                principal=request.user, slug=data["organization"]
            )
        message = services.message_receive(
            organization=organization,
            phone=data["phone"],
            text=data["message"],
            name=data.get("name", ""),
        )
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class MessageReceiptView(APIView):
    required_scopes = {"POST": scopes.INBOUND}

    @extend_schema(
        request=ReceiptSerializer,
        responses=ReceiptResultSerializer,
        summary="Status receipt (sent -> delivered -> read, or failed); never downgrades",
    )
    def post(self, request: Request, uuid: str) -> Response:
        body = ReceiptSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        message = selectors.message_get_for_principal(principal=request.user, uuid=uuid)
        applied = services.message_status_apply(
            message=message, status=body.validated_data["status"]
        )
        return Response({"applied": applied, "message": MessageSerializer(message).data})


class MessageRetryView(APIView):
    required_scopes = {"POST": scopes.AGENT}

    @extend_schema(request=None, responses=MessageSerializer, summary="Send a failed message again")
    def post(self, request: Request, uuid: str) -> Response:
        message = selectors.message_get_for_principal(principal=request.user, uuid=uuid)
        return Response(MessageSerializer(services.message_retry(message=message)).data)


class ClientListView(APIView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.AGENT}

    @extend_schema(parameters=[ORGANIZATION_PARAM], responses=ClientSerializer(many=True))
    def get(self, request: Request) -> Response:
        qs = selectors.client_list(principal=request.user, organization_slug=_org_param(request))
        if tag := request.query_params.get("tag"):
            try:
                tag_validator(tag)
            except DjangoValidationError as exc:
                raise ApplicationError("Invalid tag.", fields={"tag": exc.messages}) from exc
            qs = qs.filter(tag=tag)
        return _paginate(self, request, qs, ClientPagination, ClientSerializer)

    @extend_schema(request=ClientWriteSerializer, responses={201: ClientSerializer})
    def post(self, request: Request) -> Response:
        body = ClientWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        if isinstance(request.user, IntegrationPrincipal):
            organization = request.user.organization
            data.pop("organization", None)
        elif "organization" not in data:
            raise ApplicationError(
                "Which organization?", fields={"organization": ["This field is required."]}
            )
        else:
            organization = organization_get_for_principal(
                principal=request.user, slug=data.pop("organization")
            )
        client = services.client_create(organization=organization, **data)
        return Response(ClientSerializer(client).data, status=status.HTTP_201_CREATED)


class ClientDetailView(APIView):
    required_scopes = {
        "GET": scopes.READ,
        "PUT": scopes.AGENT,
        "PATCH": scopes.AGENT,
        "DELETE": scopes.AGENT,
    }

    @extend_schema(responses=ClientSerializer)
    def get(self, request: Request, uuid: str) -> Response:
        return Response(
            ClientSerializer(
                selectors.client_get_for_principal(principal=request.user, uuid=uuid)
            ).data
        )

    def _update(self, request: Request, uuid: str, partial: bool) -> Response:
        client = selectors.client_get_for_principal(principal=request.user, uuid=uuid)
        body = ClientWriteSerializer(client, data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        data.pop("organization", None)  # a client does not move between organizations
        return Response(ClientSerializer(services.client_update(client=client, data=data)).data)

    @extend_schema(request=ClientWriteSerializer, responses=ClientSerializer)
    def put(self, request: Request, uuid: str) -> Response:
        return self._update(request, uuid, partial=False)

    @extend_schema(request=ClientWriteSerializer, responses=ClientSerializer)
    def patch(self, request: Request, uuid: str) -> Response:
        return self._update(request, uuid, partial=True)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, uuid: str) -> Response:
        services.client_delete(
            client=selectors.client_get_for_principal(principal=request.user, uuid=uuid)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
