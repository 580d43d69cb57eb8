"""Escalation reads and fetch-and-authorize helpers."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from django.utils.translation import gettext

from core.access import organizations_for
from core.errors import ApplicationError
from core.models import Team, TeamMember
from escalation.models import Incident, Rule


def incident_list(
    *, principal: Any, organization_slug: str | None = None, status: str | None = None
) -> QuerySet[Incident]:
    qs = Incident.objects.filter(organization__in=organizations_for(principal))
    if organization_slug is not None:
        qs = qs.filter(organization__slug=organization_slug)
    if status:
        qs = qs.filter(status=status)
    return qs.select_related("organization", "acknowledged_by", "resolved_by")


def incident_get_for_principal(*, principal: Any, uuid: UUID | str) -> Incident:
    incident = incident_list(principal=principal).filter(uuid=uuid).first()
    if incident is None:
        raise ApplicationError(gettext("Incident not found."), code="not_found", status_code=404)
    return incident


def rule_list(*, principal: Any, organization_slug: str | None = None) -> QuerySet[Rule]:
    qs = Rule.objects.filter(organization__in=organizations_for(principal))
    if organization_slug is not None:
        qs = qs.filter(organization__slug=organization_slug)
    return qs.select_related("organization").prefetch_related("levels__team")


def rule_get_for_principal(*, principal: Any, pk: int) -> Rule:
    rule = rule_list(principal=principal).filter(pk=pk).first()
    if rule is None:
        raise ApplicationError(gettext("Rule not found."), code="not_found", status_code=404)
    return rule


def team_list(*, principal: Any, organization_slug: str | None = None) -> QuerySet[Team]:
    qs = Team.objects.filter(organization__in=organizations_for(principal))
    if organization_slug is not None:
        qs = qs.filter(organization__slug=organization_slug)
    return qs.select_related("organization").prefetch_related("members__membership__user")


def team_get_for_principal(*, principal: Any, pk: int) -> Team:
    team = team_list(principal=principal).filter(pk=pk).first()
    if team is None:
        raise ApplicationError(gettext("Team not found."), code="not_found", status_code=404)
    return team


def team_members_of(*, team_id: int | None, organization_id: int) -> list[TeamMember]:
    """The team's members in round-robin order, only memberships of `organization_id`:
    a team row edited to hold another organization's membership never leaks it."""
    if not team_id:
        return []
    return list(
        TeamMember.objects.filter(team_id=team_id, membership__organization_id=organization_id)
        .select_related("membership__user")
        .order_by("order", "id")
    )
