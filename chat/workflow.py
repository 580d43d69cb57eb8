"""The conversation workflow (issue 13): status, snooze, assignment to an agent or a team.

Statuses: open -> pending (waiting on the client) -> resolved, and snoozed until a time.
Two things move a desk back to open without an agent: a client's message
(`chat.services.help_desk_touch`) and the snooze time passing (`help_desks_unsnooze_due`,
run by the cron's `chat.jobs.help_desks_unsnooze`). Every change publishes
`update_helpdesk` after commit, like every other help-desk write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from chat.models import HelpDesk
from chat.representations import HelpDeskSerializer
from core.errors import ApplicationError
from core.events import publish_on_commit
from core.logging import get_logger
from core.models import Team

log = get_logger(__name__)

# The seed's name for `resolved`, still accepted by the API (documented as deprecated).
STATUS_ALIASES = {"closed": HelpDesk.Status.RESOLVED.value}
# What a desk may be set to or filtered by: the statuses and their aliases.
STATUS_INPUTS = [*HelpDesk.Status.values, *STATUS_ALIASES]


def status_normalize(value: str) -> str:
    return STATUS_ALIASES.get(value, value)


def publish_help_desk(help_desk: HelpDesk) -> None:
    publish_on_commit(
        help_desk.organization_id, "update_helpdesk", HelpDeskSerializer(help_desk).data
    )


def _member(*, organization_id: int, ref: int | str) -> Any:
    """The organization's member that `ref` names: a user id or (the seed's form) a
    username. Another tenant's user and an unknown one are the same 400."""
    users = get_user_model().objects.filter(memberships__organization_id=organization_id)
    user = (
        users.filter(pk=ref).first() if isinstance(ref, int) else users.filter(username=ref).first()
    )
    if user is None:
        raise ApplicationError(
            gettext("Unknown agent."),
            fields={"assignee": [gettext("Not an agent of this organization.")]},
        )
    return user


def _team(*, organization_id: int, team_id: int) -> Team:
    team = Team.objects.filter(organization_id=organization_id, pk=team_id).first()
    if team is None:
        raise ApplicationError(
            gettext("Unknown team."), fields={"team": [gettext("Not a team of this organization.")]}
        )
    return team


@transaction.atomic
def help_desk_workflow_update(*, help_desk: HelpDesk, data: dict[str, Any]) -> HelpDesk:
    """Apply a PATCH: any of `status`, `snoozed_until`, `assignee` (user id, username or
    None), `team` (team id or None). Call with the desk's row locked (the view fetches
    it with `lock=True`), so two agents' changes apply one after the other.

    The body's shape was validated by the API's serializer (snoozed_until present and in
    the future when status is snoozed); what depends on the organization is checked here.
    """
    organization_id = help_desk.organization_id
    if "status" in data:
        help_desk.status = status_normalize(data["status"])
        # A snooze time means something only while snoozed; any other status clears it.
        help_desk.snoozed_until = (
            data.get("snoozed_until") if help_desk.status == HelpDesk.Status.SNOOZED else None
        )
    if "assignee" in data:
        ref = data["assignee"]
        help_desk.assignee = (
            None if ref is None else _member(organization_id=organization_id, ref=ref)
        )
    if "team" in data:
        team_id = data["team"]
        help_desk.team = (
            None if team_id is None else _team(organization_id=organization_id, team_id=team_id)
        )
    help_desk.save()
    log.info(
        "help_desk_updated",
        help_desk_id=help_desk.pk,
        fields=sorted(data),
        status=help_desk.status,
        assignee_id=help_desk.assignee_id,
        team_id=help_desk.team_id,
    )
    publish_help_desk(help_desk)
    return help_desk


def help_desks_unsnooze_due(*, now: datetime | None = None, batch: int = 500) -> int:
    """Reopen the snoozed desks whose time has come. Idempotent: each desk is re-read
    under its row lock, so a desk a client's message already reopened (or an agent
    re-snoozed later) is left alone. Returns how many were reopened."""
    now = now or timezone.now()
    due = list(
        HelpDesk.objects.filter(status=HelpDesk.Status.SNOOZED, snoozed_until__lte=now)
        .order_by("snoozed_until")
        .values_list("pk", flat=True)[:batch]
    )
    reopened = 0
    for pk in due:
        with transaction.atomic():
            desk = (
                HelpDesk.objects.select_for_update(of=("self",))
                .select_related("client", "last_message", "assignee", "team", "organization")
                .filter(pk=pk, status=HelpDesk.Status.SNOOZED, snoozed_until__lte=now)
                .first()
            )
            if desk is None:
                continue
            desk.status = HelpDesk.Status.OPEN
            desk.snoozed_until = None
            desk.save(update_fields=["status", "snoozed_until", "updated_at"])
            log.info("help_desk_unsnoozed", help_desk_id=desk.pk)
            publish_help_desk(desk)
            reopened += 1
    return reopened
