"""Escalation HTTP API: thin views (validate, call one service, serialize)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import permissions, scopes
from core.api import ListView, slug_of
from core.errors import ApplicationError
from core.models import Organization, Team
from core.scope import ORGANIZATION_PARAM, organization_scope
from escalation import incidents, rules, selectors
from escalation.ingest import triggers_ingest
from escalation.models import Incident, Rule
from escalation.payloads import ingest_body
from escalation.representations import IncidentDetailSerializer, IncidentSerializer
from escalation.serializers import (
    AlertmanagerAcceptedSerializer,
    AlertmanagerSerializer,
    RuleSerializer,
    RuleWriteSerializer,
    TeamSerializer,
    TeamWriteSerializer,
    TriggersAcceptedSerializer,
    TriggersPayloadSerializer,
)

ADMIN_WRITES = permissions.with_default(permissions.IsOrganizationAdmin)
AGENTS = permissions.with_default(permissions.IsAgent)


class TriggersView(APIView):
    required_scopes = {"POST": scopes.TRIGGERS}
    throttle_scope = "triggers"  # TRIGGER_RATE, the fast path's bucket (core/throttles.py)

    @extend_schema(
        request=TriggersPayloadSerializer,
        responses={202: TriggersAcceptedSerializer},
        parameters=[ORGANIZATION_PARAM],
        summary="Monitoring posts failing triggers (seed `gatilhos` or `triggers`)",
    )
    def post(self, request: Request) -> Response:
        body = TriggersPayloadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        organization = organization_scope(request, required=True)
        payload = body.validated_data["payload"]
        results = triggers_ingest(organization=organization, payload=payload)
        return Response(
            ingest_body(results, payload.received, alertmanager=False),
            status=status.HTTP_202_ACCEPTED,
        )


class AlertmanagerView(APIView):
    required_scopes = {"POST": scopes.TRIGGERS}
    throttle_scope = "triggers"

    @extend_schema(
        request=AlertmanagerSerializer,
        responses={202: AlertmanagerAcceptedSerializer},
        parameters=[ORGANIZATION_PARAM],
        summary="Prometheus Alertmanager webhook (version 4)",
    )
    def post(self, request: Request) -> Response:
        body = AlertmanagerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        organization = organization_scope(request, required=True)
        payload = body.validated_data["payload"]
        results = triggers_ingest(organization=organization, payload=payload)
        return Response(
            ingest_body(results, payload.received, alertmanager=True),
            status=status.HTTP_202_ACCEPTED,
        )


class IncidentListView(ListView):
    required_scopes = {"GET": scopes.READ}
    serializer_class = IncidentSerializer

    def list_queryset(self, organization: Organization | None) -> Any:
        wanted = self.request.query_params.get("status")
        if wanted and wanted not in Incident.Status.values:
            raise ApplicationError(
                gettext("Unknown status."),
                fields={
                    "status": [
                        gettext("One of %(values)s.")
                        % {"values": ", ".join(Incident.Status.values)}
                    ]
                },
            )
        return selectors.incident_list(
            principal=self.request.user, organization_slug=slug_of(organization), status=wanted
        )

    @extend_schema(
        parameters=[
            ORGANIZATION_PARAM,
            OpenApiParameter("status", str, required=False, enum=Incident.Status.values),
        ],
        summary="Incidents, newest first (cursor in the Link header)",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class IncidentDetailView(APIView):
    required_scopes = {"GET": scopes.READ}

    @extend_schema(responses=IncidentDetailSerializer, operation_id="api_incidents_detail")
    def get(self, request: Request, uuid: str) -> Response:
        incident = selectors.incident_get_for_principal(principal=request.user, uuid=uuid)
        return Response(IncidentDetailSerializer(incident).data)


class IncidentAcknowledgeView(APIView):
    required_scopes = {"POST": scopes.AGENT}
    permission_classes = AGENTS

    @extend_schema(
        request=None, responses=IncidentSerializer, summary="Acknowledge: stops further escalation"
    )
    def post(self, request: Request, uuid: str) -> Response:
        incident = selectors.incident_get_for_principal(principal=request.user, uuid=uuid)
        incident = incidents.incident_acknowledge(incident=incident, user=request.user)
        return Response(IncidentSerializer(incident).data)


class IncidentResolveView(APIView):
    required_scopes = {"POST": scopes.AGENT}
    permission_classes = AGENTS

    @extend_schema(request=None, responses=IncidentSerializer, summary="Resolve an incident")
    def post(self, request: Request, uuid: str) -> Response:
        incident = selectors.incident_get_for_principal(principal=request.user, uuid=uuid)
        incident = incidents.incident_resolve(incident=incident, user=request.user)
        return Response(IncidentSerializer(incident).data)


def _rule_args(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": data["code"],
        "name": data.get("name", ""),
        "is_active": data.get("is_active", True),
        "triggers": data["triggers"],
        "levels": data.get("levels", []),
        "warn_after": data.get("warn_after"),
        "warn_tags": data.get("warn_tags", []),
        "warn_message": data.get("warn_message", ""),
    }


class RuleListView(ListView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.ADMIN}
    permission_classes = ADMIN_WRITES
    serializer_class = RuleSerializer

    def list_queryset(self, organization: Organization | None) -> Any:
        return selectors.rule_list(
            principal=self.request.user, organization_slug=slug_of(organization)
        )

    @extend_schema(parameters=[ORGANIZATION_PARAM])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=RuleWriteSerializer, responses={201: RuleSerializer})
    def post(self, request: Request) -> Response:
        body = RuleWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        organization = organization_scope(
            request, slug=body.validated_data.get("organization"), required=True
        )
        self.check_object_permissions(request, organization)
        rule = rules.rule_save(organization=organization, **_rule_args(body.validated_data))
        return Response(RuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class RuleDetailView(APIView):
    required_scopes = {"GET": scopes.READ, "PUT": scopes.ADMIN, "DELETE": scopes.ADMIN}
    permission_classes = ADMIN_WRITES

    def get_object(self) -> Rule:
        rule = selectors.rule_get_for_principal(principal=self.request.user, pk=self.kwargs["pk"])
        self.check_object_permissions(self.request, rule)
        return rule

    @extend_schema(responses=RuleSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(RuleSerializer(self.get_object()).data)

    @extend_schema(request=RuleWriteSerializer, responses=RuleSerializer)
    def put(self, request: Request, pk: int) -> Response:
        rule = self.get_object()
        body = RuleWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rule = rules.rule_save(
            organization=rule.organization, rule=rule, **_rule_args(body.validated_data)
        )
        return Response(RuleSerializer(rule).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        rules.rule_delete(rule=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamListView(ListView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.ADMIN}
    permission_classes = ADMIN_WRITES
    serializer_class = TeamSerializer

    def list_queryset(self, organization: Organization | None) -> Any:
        return selectors.team_list(
            principal=self.request.user, organization_slug=slug_of(organization)
        )

    @extend_schema(parameters=[ORGANIZATION_PARAM])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=TeamWriteSerializer, responses={201: TeamSerializer})
    def post(self, request: Request) -> Response:
        body = TeamWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        organization = organization_scope(request, slug=data.get("organization"), required=True)
        self.check_object_permissions(request, organization)
        team = rules.team_save(
            organization=organization,
            slug=data["slug"],
            name=data.get("name", ""),
            members=data.get("members", []),
        )
        return Response(TeamSerializer(team).data, status=status.HTTP_201_CREATED)


class TeamDetailView(APIView):
    required_scopes = {"GET": scopes.READ, "PUT": scopes.ADMIN}
    permission_classes = ADMIN_WRITES

    def get_object(self) -> Team:
        team = selectors.team_get_for_principal(principal=self.request.user, pk=self.kwargs["pk"])
        self.check_object_permissions(self.request, team)
        return team

    @extend_schema(responses=TeamSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(TeamSerializer(self.get_object()).data)

    @extend_schema(request=TeamWriteSerializer, responses=TeamSerializer)
    def put(self, request: Request, pk: int) -> Response:
        team = self.get_object()
        body = TeamWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        team = rules.team_save(
            organization=team.organization,
            team=team,
            slug=data["slug"],
            name=data.get("name", ""),
            members=data.get("members"),
        )
        return Response(TeamSerializer(team).data)
