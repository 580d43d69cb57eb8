"""Escalation HTTP API: thin views (validate, call one service, serialize)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import scopes
from core.access import is_admin, organization_get_for_principal
from core.auth import IntegrationPrincipal
from core.errors import ApplicationError
from core.models import Organization
from core.pagination import LinkHeaderCursorPagination
from escalation import incidents, rules, selectors
from escalation.ingest import triggers_ingest
from escalation.models import Incident
from escalation.payloads import ingest_body
from escalation.serializers import (
    AlertmanagerSerializer,
    IncidentStepSerializer,
    RuleSerializer,
    RuleWriteSerializer,
    TeamSerializer,
    TeamWriteSerializer,
    TriggersPayloadSerializer,
)

ORGANIZATION_PARAM = OpenApiParameter(
    "organization", str, required=False, description="Organization slug (agent keys)."
)


def _organization(request: Request, slug: str | None) -> Organization:
    if isinstance(request.user, IntegrationPrincipal):
        return request.user.organization
    slug = slug or request.query_params.get("organization")
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


def _require_agent(request: Request) -> None:
    if isinstance(request.user, IntegrationPrincipal):
        raise ApplicationError("Agents only; use an agent key.", code="forbidden", status_code=403)


class TriggersView(APIView):
    required_scopes = {"POST": scopes.TRIGGERS}
    throttle_scope = "triggers"  # TRIGGER_RATE, the fast path's bucket (core/throttles.py)

    @extend_schema(
        request=TriggersPayloadSerializer,
        responses={202: dict},
        parameters=[ORGANIZATION_PARAM],
        summary="Monitoring posts failing triggers (seed `gatilhos` or `triggers`)",
    )
    def post(self, request: Request) -> Response:
        body = TriggersPayloadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        organization = _organization(request, None)
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
        responses={202: dict},
        parameters=[ORGANIZATION_PARAM],
        summary="Prometheus Alertmanager webhook (version 4)",
    )
    def post(self, request: Request) -> Response:
        body = AlertmanagerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        organization = _organization(request, None)
        payload = body.validated_data["payload"]
        results = triggers_ingest(organization=organization, payload=payload)
        return Response(
            ingest_body(results, payload.received, alertmanager=True),
            status=status.HTTP_202_ACCEPTED,
        )


class IncidentPagination(LinkHeaderCursorPagination):
    ordering = "-id"


def _incident_body(incident: Incident, steps: bool = False) -> dict[str, Any]:
    data = incidents.incident_data(incident)
    if steps:
        data["steps"] = IncidentStepSerializer(
            incident.steps.select_related("team").prefetch_related("notifications"), many=True
        ).data
    return data


class IncidentListView(APIView):
    required_scopes = {"GET": scopes.READ}

    @extend_schema(
        parameters=[
            ORGANIZATION_PARAM,
            OpenApiParameter("status", str, required=False, enum=Incident.Status.values),
        ],
        responses=dict,
        summary="Incidents, newest first (cursor in the Link header)",
    )
    def get(self, request: Request) -> Response:
        slug = request.query_params.get("organization")
        if slug is not None:
            organization_get_for_principal(principal=request.user, slug=slug)
        wanted = request.query_params.get("status")
        if wanted and wanted not in Incident.Status.values:
            raise ApplicationError(
                "Unknown status.", fields={"status": [f"One of {Incident.Status.values}."]}
            )
        qs = selectors.incident_list(principal=request.user, organization_slug=slug, status=wanted)
        paginator = IncidentPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response([_incident_body(i) for i in page or []])


class IncidentDetailView(APIView):
    required_scopes = {"GET": scopes.READ}

    @extend_schema(responses=dict, operation_id="api_incidents_detail")
    def get(self, request: Request, uuid: str) -> Response:
        incident = selectors.incident_get_for_principal(principal=request.user, uuid=uuid)
        return Response(_incident_body(incident, steps=True))


class IncidentAcknowledgeView(APIView):
    required_scopes = {"POST": scopes.AGENT}

    @extend_schema(request=None, responses=dict, summary="Acknowledge: stops further escalation")
    def post(self, request: Request, uuid: str) -> Response:
        _require_agent(request)
        incident = selectors.incident_get_for_principal(principal=request.user, uuid=uuid)
        incident = incidents.incident_acknowledge(incident=incident, user=request.user)
        return Response(_incident_body(incident))


class IncidentResolveView(APIView):
    required_scopes = {"POST": scopes.AGENT}

    @extend_schema(request=None, responses=dict, summary="Resolve an incident")
    def post(self, request: Request, uuid: str) -> Response:
        _require_agent(request)
        incident = selectors.incident_get_for_principal(principal=request.user, uuid=uuid)
        incident = incidents.incident_resolve(incident=incident, user=request.user)
        return Response(_incident_body(incident))


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


class RuleListView(APIView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.ADMIN}

    @extend_schema(parameters=[ORGANIZATION_PARAM], responses=RuleSerializer(many=True))
    def get(self, request: Request) -> Response:
        slug = request.query_params.get("organization")
        if slug is not None:
            organization_get_for_principal(principal=request.user, slug=slug)
        rules = selectors.rule_list(principal=request.user, organization_slug=slug)
        return Response(RuleSerializer(rules, many=True).data)

    @extend_schema(request=RuleWriteSerializer, responses={201: RuleSerializer})
    def post(self, request: Request) -> Response:
        body = RuleWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        organization = _organization(request, body.validated_data.get("organization"))
        _require_admin(request, organization)
        rule = rules.rule_save(organization=organization, **_rule_args(body.validated_data))
        return Response(RuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class RuleDetailView(APIView):
    required_scopes = {"GET": scopes.READ, "PUT": scopes.ADMIN, "DELETE": scopes.ADMIN}

    @extend_schema(responses=RuleSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(
            RuleSerializer(selectors.rule_get_for_principal(principal=request.user, pk=pk)).data
        )

    @extend_schema(request=RuleWriteSerializer, responses=RuleSerializer)
    def put(self, request: Request, pk: int) -> Response:
        rule = selectors.rule_get_for_principal(principal=request.user, pk=pk)
        _require_admin(request, rule.organization)
        body = RuleWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rule = rules.rule_save(
            organization=rule.organization, rule=rule, **_rule_args(body.validated_data)
        )
        return Response(RuleSerializer(rule).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        rule = selectors.rule_get_for_principal(principal=request.user, pk=pk)
        _require_admin(request, rule.organization)
        rules.rule_delete(rule=rule)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamListView(APIView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.ADMIN}

    @extend_schema(parameters=[ORGANIZATION_PARAM], responses=TeamSerializer(many=True))
    def get(self, request: Request) -> Response:
        slug = request.query_params.get("organization")
        if slug is not None:
            organization_get_for_principal(principal=request.user, slug=slug)
        teams = selectors.team_list(principal=request.user, organization_slug=slug)
        return Response(TeamSerializer(teams, many=True).data)

    @extend_schema(request=TeamWriteSerializer, responses={201: TeamSerializer})
    def post(self, request: Request) -> Response:
        body = TeamWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        organization = _organization(request, data.get("organization"))
        _require_admin(request, organization)
        team = rules.team_save(
            organization=organization,
            slug=data["slug"],
            name=data.get("name", ""),
            members=data.get("members", []),
        )
        return Response(TeamSerializer(team).data, status=status.HTTP_201_CREATED)


class TeamDetailView(APIView):
    required_scopes = {"GET": scopes.READ, "PUT": scopes.ADMIN}

    @extend_schema(responses=TeamSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(
            TeamSerializer(selectors.team_get_for_principal(principal=request.user, pk=pk)).data
        )

    @extend_schema(request=TeamWriteSerializer, responses=TeamSerializer)
    def put(self, request: Request, pk: int) -> Response:
        team = selectors.team_get_for_principal(principal=request.user, pk=pk)
        _require_admin(request, team.organization)
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
