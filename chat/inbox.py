"""Inbox reads for the console (issue 13): the views (mine / unassigned / all, by status
and team), their counts, and each agent's own unread count.

Cheap on purpose (the inbox is the hottest read): filters are plain WHERE clauses on
indexed columns, the per-agent unread count is one correlated lookup on a unique index
per row of the page, and the counts are two aggregate queries whatever the inbox's size.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Greatest

from chat.models import HelpDesk, HelpDeskRead
from core.models import Organization, Team

RESOLVED = HelpDesk.Status.RESOLVED


def _user_id(principal: Any) -> int | None:
    # An integration key has no user: nothing is "mine", every count of its own is 0.
    return getattr(principal, "pk", None)


def help_desk_filter(
    qs: QuerySet[HelpDesk],
    *,
    principal: Any,
    view: str | None = None,
    status: str | None = None,
    team: int | None = None,
) -> QuerySet[HelpDesk]:
    """Narrow an inbox queryset. `view` mine/unassigned leave resolved desks out (what
    needs someone); `all` and no view keep every status unless `status` says one."""
    if view in ("mine", "unassigned"):
        qs = qs.exclude(status=RESOLVED)
        qs = (
            qs.filter(assignee_id=_user_id(principal))
            if view == "mine"
            else qs.filter(assignee__isnull=True)
        )
    if status:
        qs = qs.filter(status=status)
    if team is not None:
        qs = qs.filter(team_id=team)
    return qs


def with_agent_unread(qs: QuerySet[HelpDesk], *, principal: Any) -> QuerySet[HelpDesk]:
    """Annotate `agent_unread`: what the client sent since this agent last read the desk."""
    user_id = _user_id(principal)
    if user_id is None:
        return qs.annotate(agent_unread=F("received_count"))
    read = HelpDeskRead.objects.filter(help_desk=OuterRef("pk"), user_id=user_id).values(
        "read_count"
    )[:1]
    return qs.annotate(
        agent_unread=Greatest(
            F("received_count") - Coalesce(Subquery(read, output_field=IntegerField()), 0),
            Value(0),
        )
    )


def help_desk_counts(*, principal: Any, organizations: QuerySet[Organization]) -> dict[str, Any]:
    """The numbers beside the inbox's views: mine / unassigned / all count the desks
    that are not resolved; `status` every status; `teams` each team's unresolved desks."""
    desks = HelpDesk.objects.filter(organization__in=organizations)
    active = ~Q(status=RESOLVED)
    user_id = _user_id(principal)
    aggregates: dict[str, Any] = {
        "all": Count("pk", filter=active),
        "unassigned": Count("pk", filter=active & Q(assignee__isnull=True)),
        **{f"status_{s}": Count("pk", filter=Q(status=s)) for s in HelpDesk.Status.values},
    }
    if user_id is not None:
        aggregates["mine"] = Count("pk", filter=active & Q(assignee_id=user_id))
    totals = {"mine": 0, **desks.aggregate(**aggregates)}
    per_team = dict(
        desks.filter(active, team__isnull=False)
        .values("team_id")
        .annotate(n=Count("pk"))
        .values_list("team_id", "n")
    )
    teams = Team.objects.filter(organization__in=organizations).order_by("name", "pk")
    return {
        "mine": totals["mine"],
        "unassigned": totals["unassigned"],
        "all": totals["all"],
        "status": {s: totals[f"status_{s}"] for s in HelpDesk.Status.values},
        "teams": [
            {"id": t.pk, "name": t.name, "count": per_team.get(t.pk, 0)}
            for t in teams.only("pk", "name")
        ],
    }
