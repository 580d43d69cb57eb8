"""The console's other chat endpoints (issue 13): private notes, canned replies.

Thin: validate, fetch through the one authorization rule (`chat.selectors`), call one
service, serialize. Notes are agents' only (an integration key, whatever its scopes,
gets 403); canned replies are read by every member and written by organization admins.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import canned, notes, search, selectors, sidebar
from chat.console_serializers import (
    CannedReplyWriteSerializer,
    ClientContextSerializer,
    NoteCreateSerializer,
    SearchQuerySerializer,
    SearchResultSerializer,
)
from chat.models import CannedReply
from chat.representations import CannedReplySerializer, NoteSerializer
from core import permissions, scopes
from core.access import organizations_for
from core.api import ListView, slug_of
from core.errors import ApplicationError
from core.models import Organization
from core.scope import ORGANIZATION_PARAM, create_in_organization, organization_scope

AGENTS_ONLY = permissions.with_default(permissions.IsAgent)
ADMIN_WRITES = permissions.with_default(permissions.IsOrganizationAdmin)


class HelpDeskNotesView(ListView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.AGENT}
    permission_classes = AGENTS_ONLY
    serializer_class = NoteSerializer
    ordering = ("-created_at", "-id")

    def get_queryset(self) -> Any:
        help_desk = selectors.help_desk_get_for_principal(
            principal=self.request.user, uuid=self.kwargs["uuid"]
        )
        return notes.note_list(help_desk=help_desk)

    @extend_schema(summary="Private notes of a help desk, newest first (agents only)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=NoteCreateSerializer, responses={201: NoteSerializer})
    def post(self, request: Request, uuid: str) -> Response:
        body = NoteCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        help_desk = selectors.help_desk_get_for_principal(principal=request.user, uuid=uuid)
        note = notes.note_create(
            help_desk=help_desk, author=request.user, text=body.validated_data["text"]
        )
        return Response(NoteSerializer(note).data, status=status.HTTP_201_CREATED)


def _canned_replies(principal: Any, organization_slug: str | None = None) -> Any:
    qs = CannedReply.objects.filter(organization__in=organizations_for(principal))
    if organization_slug is not None:
        qs = qs.filter(organization__slug=organization_slug)
    return qs.select_related("organization")


class CannedReplyListView(ListView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.ADMIN}
    permission_classes = ADMIN_WRITES
    serializer_class = CannedReplySerializer
    ordering = ("shortcut", "id")

    def list_queryset(self, organization: Organization | None) -> Any:
        return _canned_replies(self.request.user, slug_of(organization))

    @extend_schema(parameters=[ORGANIZATION_PARAM], summary="Canned replies, by shortcut")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=CannedReplyWriteSerializer, responses={201: CannedReplySerializer})
    def post(self, request: Request) -> Response:
        organization, data = create_in_organization(request, CannedReplyWriteSerializer, view=self)
        reply = canned.canned_reply_create(organization=organization, **data)
        return Response(CannedReplySerializer(reply).data, status=status.HTTP_201_CREATED)


class CannedReplyDetailView(APIView):
    required_scopes = {"GET": scopes.READ, "PATCH": scopes.ADMIN, "DELETE": scopes.ADMIN}
    permission_classes = ADMIN_WRITES

    def get_object(self) -> CannedReply:
        reply = _canned_replies(self.request.user).filter(pk=self.kwargs["pk"]).first()
        if reply is None:
            raise ApplicationError(
                gettext("Canned reply not found."), code="not_found", status_code=404
            )
        self.check_object_permissions(self.request, reply)
        return reply

    @extend_schema(responses=CannedReplySerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(CannedReplySerializer(self.get_object()).data)

    @extend_schema(request=CannedReplyWriteSerializer, responses=CannedReplySerializer)
    def patch(self, request: Request, pk: int) -> Response:
        reply = self.get_object()
        body = CannedReplyWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        data.pop("organization", None)  # a reply does not move between organizations
        return Response(
            CannedReplySerializer(canned.canned_reply_update(reply=reply, data=data)).data
        )

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        canned.canned_reply_delete(reply=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ClientContextView(APIView):
    """`GET /api/clients/<uuid>/context/`: the sidebar. Agents only: it gathers what
    mailings and incidents say about one person."""

    required_scopes = {"GET": scopes.READ}
    permission_classes = AGENTS_ONLY

    @extend_schema(responses=ClientContextSerializer, summary="A client's context (sidebar)")
    def get(self, request: Request, uuid: str) -> Response:
        client = selectors.client_get_for_principal(principal=request.user, uuid=uuid)
        data = {
            "client": client,
            "help_desks": sidebar.client_help_desks(client=client),
            "mailings": sidebar.client_mailings(client=client),
            "incidents": sidebar.client_incidents(client=client),
        }
        return Response(ClientContextSerializer(data).data)


class SearchView(APIView):
    """`GET /api/search/?organization=&q=`: clients and messages of the organization (of
    every organization the caller belongs to without `organization`). chat/search."""

    required_scopes = {"GET": scopes.READ}

    @extend_schema(
        parameters=[
            ORGANIZATION_PARAM,
            OpenApiParameter("q", str, required=True, description="2-200 characters."),
        ],
        responses=SearchResultSerializer,
        summary="Search clients (name, phone, tag, email) and message text",
    )
    def get(self, request: Request) -> Response:
        query = SearchQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data["q"]
        organization = organization_scope(request, required=False)
        organizations = organizations_for(request.user)
        if organization is not None:
            organizations = organizations.filter(pk=organization.pk)
        result = {
            "clients": search.search_clients(organizations=organizations, q=q),
            "messages": search.search_messages(organizations=organizations, q=q),
        }
        return Response(SearchResultSerializer(result).data)
