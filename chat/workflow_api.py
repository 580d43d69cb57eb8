"""The console's help-desk endpoints (issue 13): inbox views and filters, counts, and the
workflow PATCH. They extend chat/api.py's views (same paths, scopes and shapes) with
what the console needs; thin like them: validate, call one service, serialize."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import api, inbox, reads, selectors, workflow
from chat.console_serializers import HelpDeskWorkflowSerializer, InboxFilterSerializer
from chat.representations import HelpDeskSerializer
from core import scopes
from core.access import organizations_for
from core.models import Organization
from core.scope import ORGANIZATION_PARAM, organization_scope

INBOX_PARAMS = [
    ORGANIZATION_PARAM,
    OpenApiParameter("view", str, enum=["mine", "unassigned", "all"], required=False),
    OpenApiParameter("status", str, enum=workflow.STATUS_INPUTS, required=False),
    OpenApiParameter("team", int, required=False),
]


class HelpDeskInboxView(api.HelpDeskListView):
    """`GET /api/help-desks/` with the console's views: `view=mine|unassigned|all`,
    `status=`, `team=` (invalid values: 400 with field errors)."""

    def list_queryset(self, organization: Organization | None) -> Any:
        filters = InboxFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        given = filters.validated_data
        qs = super().list_queryset(organization).select_related("team")
        qs = inbox.with_agent_unread(qs, principal=self.request.user)
        return inbox.help_desk_filter(
            qs,
            principal=self.request.user,
            view=given.get("view"),
            status=workflow.status_normalize(given["status"]) if "status" in given else None,
            team=given.get("team"),
        )

    @extend_schema(
        parameters=INBOX_PARAMS,
        summary="Help desks, newest activity first (cursor in the Link header)",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class HelpDeskWorkflowView(api.HelpDeskDetailView):
    """`PATCH /api/help-desks/<uuid>/`: status (snoozed with snoozed_until), assignee
    (user id or username, a member of the desk's organization), team."""

    @extend_schema(responses=HelpDeskSerializer)
    def get(self, request: Request, uuid: str) -> Response:
        help_desk = selectors.help_desk_get_for_principal(principal=request.user, uuid=uuid)
        reads.help_desk_agent_unread(help_desk=help_desk, agent=request.user)
        return Response(HelpDeskSerializer(help_desk).data)

    @extend_schema(request=HelpDeskWorkflowSerializer, responses=HelpDeskSerializer)
    def patch(self, request: Request, uuid: str) -> Response:
        body = HelpDeskWorkflowSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            help_desk = selectors.help_desk_get_for_principal(
                principal=request.user, uuid=uuid, lock=True
            )
            help_desk = workflow.help_desk_workflow_update(
                help_desk=help_desk, data=body.validated_data
            )
        reads.help_desk_agent_unread(help_desk=help_desk, agent=request.user)
        return Response(HelpDeskSerializer(help_desk).data)


class _TeamCountSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    count = serializers.IntegerField()


class HelpDeskCountsSerializer(serializers.Serializer[Any]):
    mine = serializers.IntegerField()
    unassigned = serializers.IntegerField()
    all = serializers.IntegerField()
    status = serializers.DictField(child=serializers.IntegerField())
    teams = _TeamCountSerializer(many=True)


class HelpDeskCountsView(APIView):
    required_scopes = {"GET": scopes.READ}

    @extend_schema(
        parameters=[ORGANIZATION_PARAM],
        responses=HelpDeskCountsSerializer,
        summary="How many desks each inbox view holds (mine/unassigned/all: not resolved)",
    )
    def get(self, request: Request) -> Response:
        organization = organization_scope(request, required=False)
        organizations = organizations_for(request.user)
        if organization is not None:
            organizations = organizations.filter(pk=organization.pk)
        return Response(inbox.help_desk_counts(principal=request.user, organizations=organizations))
