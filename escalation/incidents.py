"""The incident state machine: record occurrences, advance, fire steps, acknowledge, resolve.

An incident freezes its rule (`rule_snapshot`) when it opens. Steps (the customer
warning, levels 1..n) are decided by `_advance`, always under the incident's row
lock, and recorded as `IncidentStep` rows unique per (incident, kind, level): each
fires once, whichever job, sweeper or trigger gets there first. Time-based levels
are scheduled jobs (`incident_check`) carrying a fencing token (`active_job_id`):
a job whose token is no longer the incident's does nothing (Grafana OnCall's
escalation snapshot pattern). Status only moves forward: open -> acknowledged ->
resolved (or open -> resolved); a trigger after resolve opens a new incident.
Every transition of an incident is made here, and only here.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext

from core.errors import ApplicationError
from core.events import publish_on_commit
from core.jobs import QUEUE_ESCALATION, enqueue_on_commit
from core.logging import get_logger
from core.models import Team
from escalation import jobs
from escalation.models import Incident, IncidentStep, Rule
from escalation.notifications import step_notifications_create
from escalation.representations import IncidentSerializer
from escalation.rules import rule_snapshot
from escalation.selectors import team_members_of
from mailing import services as mailing_services

log = get_logger(__name__)


def _publish(incident: Incident, event_type: str, **extra: Any) -> None:
    publish_on_commit(
        incident.organization_id, event_type, {**IncidentSerializer(incident).data, **extra}
    )


def _locked(incident_id: int) -> Incident | None:
    return (
        Incident.objects.select_for_update(of=("self",))
        .select_related("organization", "acknowledged_by", "resolved_by")
        .filter(pk=incident_id)
        .first()
    )


def incidents_active_locked(*, rule_ids: list[int]) -> dict[int, Incident]:
    """The active incidents of these rules, locked, by rule id (one query)."""
    return {
        incident.rule_id: incident
        for incident in Incident.objects.select_for_update(of=("self",))
        .select_related("organization")
        .filter(rule_id__in=rule_ids, status__in=Incident.ACTIVE)
        .order_by("rule_id")  # one lock order for every evaluator: no deadlock
        if incident.rule_id is not None
    }


def incident_record_occurrences(
    *,
    rule_id: int,
    count: int,
    first_at: datetime,
    last_at: datetime,
    locked: Incident | None = None,
) -> Incident | None:
    """Count `count` matching triggers for a rule: on its active incident (`locked`,
    if the caller already holds it), or on a new one opened at `first_at`. Call
    inside a transaction."""
    opened = False
    incident = locked or (
        Incident.objects.select_for_update(of=("self",))
        .select_related("organization")
        .filter(rule_id=rule_id, status__in=Incident.ACTIVE)
        .first()
    )
    if incident is None:
        rule = Rule.objects.select_related("organization").filter(pk=rule_id).first()
        if rule is None or not rule.is_active:
            return None
        try:
            with transaction.atomic():
                incident = Incident.objects.create(
                    organization=rule.organization,
                    rule=rule,
                    rule_snapshot=rule_snapshot(rule),
                    opened_at=first_at,
                    last_occurrence_at=first_at,
                )
        except IntegrityError:
            # Another evaluator opened it meanwhile (one active incident per rule).
            incident = (
                Incident.objects.select_for_update(of=("self",))
                .select_related("organization")
                .get(rule_id=rule_id, status__in=Incident.ACTIVE)
            )
        else:
            opened = True
            log.info(
                "incident_opened",
                incident_id=incident.pk,
                rule_id=rule_id,
                organization_id=rule.organization_id,
            )
    incident.occurrences += count
    incident.last_occurrence_at = max(incident.last_occurrence_at, last_at)
    if opened:
        # Serialized once the opening occurrences are counted (it said 0 before), and
        # registered before `_advance` so `incident_opened` precedes any escalation.
        _publish(incident, "incident_opened")
    _advance(incident, now=timezone.now())
    incident.save()
    return incident


def _warn_customers(incident: Incident, step: IncidentStep) -> None:
    """Hand the warning to the mailing dispatch. A failure is recorded on the step,
    never rolls the escalation back."""
    snap = incident.rule_snapshot
    try:
        with transaction.atomic():
            mailing = mailing_services.notification_send(
                organization=incident.organization,
                text=snap["warn_message"],
                tags=snap.get("warn_tags") or [],
                # What an agent recognizes in the mailings list: the rule and the time.
                name=(
                    f"{snap.get('name') or snap.get('code') or 'incident'} warning, "
                    f"{incident.opened_at:%Y-%m-%d %H:%M} UTC"
                ),
                priority=1,
            )
        step.mailing_id = mailing.pk
    except ApplicationError as exc:
        step.error = f"{exc.message} {exc.fields or ''}"[:500]
    except Exception as exc:  # the mailing app missing or broken: recorded, not fatal
        step.error = f"{type(exc).__name__}: {exc}"[:500]
    if step.error:
        log.error("incident_warning_failed", incident_id=incident.pk, error=step.error)


def _fire(
    incident: Incident, *, kind: str, level: int, reason: str, now: datetime, team_id: Any = None
) -> IncidentStep | None:
    elapsed = (now - incident.opened_at).total_seconds()
    step = IncidentStep(
        incident=incident,
        kind=kind,
        level=level,
        reason=reason,
        occurrences=incident.occurrences,
        elapsed_seconds=elapsed,
        # Only a team of the incident's organization (an admin edit could point a level
        # elsewhere): another organization's team is neither recorded nor notified.
        team_id=team_id
        if team_id
        and Team.objects.filter(pk=team_id, organization_id=incident.organization_id).exists()
        else None,
        fired_at=now,
    )
    if IncidentStep.objects.filter(incident=incident, kind=kind, level=level).exists():
        return None  # already fired (belt and braces: the row lock makes this rare)
    if kind == IncidentStep.Kind.WARNING:
        _warn_customers(incident, step)
    step.save()
    log.info(
        "incident_step",
        incident_id=incident.pk,
        kind=kind,
        level=level,
        reason=reason,
        occurrences=incident.occurrences,
        elapsed_seconds=round(elapsed, 1),
        mailing_id=step.mailing_id,
    )
    return step


def _team_members(incident: Incident, team_id: Any) -> list[str]:
    members = team_members_of(team_id=team_id, organization_id=incident.organization_id)
    return [m.membership.user.username for m in members]


def _advance(incident: Incident, *, now: datetime, reschedule: bool = False) -> None:
    """Fire whatever is due, once, and (re)schedule the next time-based check.

    Precondition: the caller holds the incident's row lock and saves it afterwards.
    """
    if incident.status == Incident.Status.RESOLVED:
        return
    snap = incident.rule_snapshot
    elapsed = (now - incident.opened_at).total_seconds()  # never timedelta.seconds
    warn_after = snap.get("warn_after")
    if warn_after and incident.customers_warned_at is None and incident.occurrences >= warn_after:
        _fire(incident, kind=IncidentStep.Kind.WARNING, level=0, reason="occurrences", now=now)
        incident.customers_warned_at = now
    if incident.status != Incident.Status.OPEN:
        return  # acknowledged: no further escalation
    levels = [lv for lv in snap.get("levels", []) if lv["level"] > incident.level]

    def due(lv: dict[str, Any]) -> str | None:
        if lv["after_occurrences"] is not None and incident.occurrences >= lv["after_occurrences"]:
            return "occurrences"
        if lv["after_minutes"] is not None and elapsed >= lv["after_minutes"] * 60:
            return "duration"
        return None

    highest = max((lv["level"] for lv in levels if due(lv)), default=0)
    for lv in levels:
        if lv["level"] > highest:
            break
        step = _fire(
            incident,
            kind=IncidentStep.Kind.LEVEL,
            level=lv["level"],
            reason=due(lv) or "implied",
            now=now,
            team_id=lv["team_id"],
        )
        if step is not None:
            incident.level = lv["level"]
            told = step_notifications_create(incident=incident, step=step)
            _publish(
                incident,
                "incident_escalated",
                escalation={
                    "level": lv["level"],
                    "reason": step.reason,
                    "team": lv["team"] if step.team_id else None,
                    "members": _team_members(incident, step.team_id),
                    "notified": told["notified"],
                    "unreachable": told["unreachable"],
                },
            )
        incident.level = max(incident.level, lv["level"])
    _schedule(incident, [lv for lv in levels if lv["level"] > incident.level], reschedule)


def _schedule(incident: Incident, pending: list[dict[str, Any]], reschedule: bool) -> None:
    times = [
        incident.opened_at + timedelta(minutes=lv["after_minutes"])
        for lv in pending
        if lv["after_minutes"] is not None
    ]
    when = min(times) if times else None
    if when == incident.next_check_at and not reschedule:
        return
    incident.next_check_at = when
    incident.active_job_id = ""
    if when is None:
        return
    token = secrets.token_hex(8)
    incident.active_job_id = token
    enqueue_on_commit(
        jobs.incident_check,
        incident.pk,
        token,
        queue=QUEUE_ESCALATION,
        at=when,
        job_id=f"incident-check-{incident.pk}-{token}",
    )


@transaction.atomic
def incident_check(*, incident_id: int, token: str | None) -> Incident | None:
    """Scheduled check (time-based levels). Acts only if `token` is the incident's
    current fencing token; `token=None` is the sweeper, which acts on any incident
    whose check is overdue."""
    incident = _locked(incident_id)
    if incident is None or incident.status != Incident.Status.OPEN:
        return incident
    if token is not None and incident.active_job_id != token:
        log.info("incident_check_stale", incident_id=incident_id, token=token)
        return incident
    _advance(incident, now=timezone.now(), reschedule=True)
    incident.save()
    return incident


@transaction.atomic
def incident_acknowledge(*, incident: Incident, user: Any) -> Incident:
    locked = _locked(incident.pk)
    assert locked is not None
    if locked.status != Incident.Status.OPEN:
        raise ApplicationError(
            gettext("The incident is %(status)s.") % {"status": locked.status},
            code="conflict",
            status_code=409,
        )
    locked.status = Incident.Status.ACKNOWLEDGED
    locked.acknowledged_at, locked.acknowledged_by = timezone.now(), user
    locked.active_job_id, locked.next_check_at = "", None  # pending checks become no-ops
    locked.save()
    log.info("incident_acknowledged", incident_id=locked.pk, user_id=user.pk)
    _publish(locked, "incident_acknowledged")
    return locked


@transaction.atomic
def incident_resolve(*, incident: Incident, user: Any = None, reason: str = "agent") -> Incident:
    locked = _locked(incident.pk)
    assert locked is not None
    if locked.status == Incident.Status.RESOLVED:
        raise ApplicationError(
            gettext("The incident is resolved."), code="conflict", status_code=409
        )
    locked.status = Incident.Status.RESOLVED
    locked.resolved_at, locked.resolve_reason = timezone.now(), reason
    if user is not None and getattr(user, "pk", None) is not None:
        locked.resolved_by = get_user_model().objects.get(pk=user.pk)
    locked.active_job_id, locked.next_check_at = "", None
    locked.save()
    log.info("incident_resolved", incident_id=locked.pk, reason=reason)
    _publish(locked, "incident_resolved")
    return locked


def incidents_resolve_for_rules(*, rule_ids: list[int], reason: str) -> list[int]:
    """Alertmanager `resolved`: resolve the active incidents of these rules. Call
    inside a transaction."""
    resolved = []
    for incident in Incident.objects.filter(rule_id__in=rule_ids, status__in=Incident.ACTIVE):
        incident_resolve(incident=incident, reason=reason)
        resolved.append(incident.pk)
    return resolved
