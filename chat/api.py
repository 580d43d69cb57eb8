"""Chat HTTP API: thin views (validate, call one service, serialize)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import clients, reads, selectors, services
from chat.representations import ClientSerializer, HelpDeskSerializer, MessageSerializer
from chat.serializers import (
    ClientWriteSerializer,
    HelpDeskCreateSerializer,
    HelpDeskUpdateSerializer,
    InboundMessageSerializer,
    ReceiptResultSerializer,
    ReceiptSerializer,
    SendMessageSerializer,
)
from core import permissions, scopes
from core.api import ListView, slug_of
from core.errors import ApplicationError
from core.models import Organization
from core.scope import ORGANIZATION_PARAM, create_in_organization, organization_scope
from core.validators import tag_validator


class HelpDeskListView(ListView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.AGENT}
    serializer_class = HelpDeskSerializer
    ordering = ("-last_activity_at", "-id")

    def list_queryset(self, organization: Organization | None) -> Any:
        return selectors.help_desk_list(
            principal=self.request.user, organization_slug=slug_of(organization)
        )

    @extend_schema(
        parameters=[ORGANIZATION_PARAM],
        summary="Help desks, newest activity first (cursor in the Link header)",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

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


class HelpDeskHistoryView(ListView):
    required_scopes = {"GET": scopes.READ}
    serializer_class = MessageSerializer
    ordering = ("-created_at", "-id")

    def get_queryset(self) -> Any:
        help_desk = selectors.help_desk_get_for_principal(
            principal=self.request.user, uuid=self.kwargs["uuid"]
        )
        return selectors.message_list(help_desk=help_desk)

    @extend_schema(
        summary="Messages of one help desk, newest first (older pages via the Link header)"
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class HelpDeskReadView(APIView):
    required_scopes = {"POST": scopes.AGENT}

    @extend_schema(request=None, responses=HelpDeskSerializer, summary="Mark a help desk read")
    def post(self, request: Request, uuid: str) -> Response:
        help_desk = selectors.help_desk_get_for_principal(principal=request.user, uuid=uuid)
        # For this agent only (issue 13): other agents' unread counts do not move.
        reads.help_desk_mark_read(help_desk=help_desk, agent=request.user)
        return Response(HelpDeskSerializer(help_desk).data)


class SendMessageView(APIView):
    required_scopes = {"POST": scopes.AGENT}
    permission_classes = permissions.with_default(permissions.IsAgent)
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(request=SendMessageSerializer, responses={201: MessageSerializer})
    def post(self, request: Request) -> Response:
        body = SendMessageSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        # The desk is read locked, in the message's transaction: the service updates
        # that row instead of reading it back (one query less per message).
        with transaction.atomic():
            try:
                help_desk = selectors.help_desk_get_for_principal(
                    principal=request.user,
                    uuid=body.validated_data["help_desk"],
                    nested=False,
                    lock=True,
                )
            except ApplicationError as exc:
                raise ApplicationError(
                    gettext("Unknown help desk."),
                    fields={"help_desk": [gettext("Help desk not found.")]},
                ) from exc
            message = services.message_create(
                help_desk=help_desk,
                text=body.validated_data.get("message", ""),
                file=body.validated_data.get("file"),
                sender=request.user,
                locked=True,
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
        organization = organization_scope(request, slug=data.get("organization"), required=True)
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
        return Response(ReceiptResultSerializer({"applied": applied, "message": message}).data)


class MessageRetryView(APIView):
    required_scopes = {"POST": scopes.AGENT}

    @extend_schema(request=None, responses=MessageSerializer, summary="Send a failed message again")
    def post(self, request: Request, uuid: str) -> Response:
        message = selectors.message_get_for_principal(principal=request.user, uuid=uuid)
        return Response(MessageSerializer(services.message_retry(message=message)).data)


class ClientListView(ListView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.AGENT}
    serializer_class = ClientSerializer
    ordering = ("-updated_at", "-id")

    def list_queryset(self, organization: Organization | None) -> Any:
        qs = selectors.client_list(
            principal=self.request.user, organization_slug=slug_of(organization)
        )
        if tag := self.request.query_params.get("tag"):
            try:
                tag_validator(tag)
            except DjangoValidationError as exc:
                raise ApplicationError(
                    gettext("Invalid tag."), fields={"tag": exc.messages}
                ) from exc
            qs = qs.filter(tag=tag)
        return qs

    @extend_schema(parameters=[ORGANIZATION_PARAM, OpenApiParameter("tag", str, required=False)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=ClientWriteSerializer, responses={201: ClientSerializer})
    def post(self, request: Request) -> Response:
        organization, data = create_in_organization(request, ClientWriteSerializer)
        client = clients.client_create(organization=organization, **data)
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
        return Response(ClientSerializer(clients.client_update(client=client, data=data)).data)

    @extend_schema(request=ClientWriteSerializer, responses=ClientSerializer)
    def put(self, request: Request, uuid: str) -> Response:
        return self._update(request, uuid, partial=False)

    @extend_schema(request=ClientWriteSerializer, responses=ClientSerializer)
    def patch(self, request: Request, uuid: str) -> Response:
        return self._update(request, uuid, partial=True)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, uuid: str) -> Response:
        clients.client_delete(
            client=selectors.client_get_for_principal(principal=request.user, uuid=uuid)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
