"""Level k notifies team k: one `IncidentNotification` row per member and channel,
created with the step (under the incident's row lock), sent by a job after commit.

The job claims each pending row with a conditional UPDATE (pending -> sending,
attempts + 1), sends through Django's email backend, then records the outcome: a
second run, or a duplicate job, finds nothing pending and sends nothing. A failure
is retried with the sender's backoff up to `NOTIFY_MAX_ATTEMPTS` (decided by
`core.outbox.retry_decision`, as every outbound message is); a worker killed
between claim and outcome leaves the row `sending`, and the sweeper puts it back to
`pending` after `STALE_CLAIM` (at least once: the only case that can email twice).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from core.jobs import QUEUE_ESCALATION, enqueue_now, enqueue_on_commit
from core.logging import get_logger
from core.outbox import retry_decision
from escalation.models import Incident, IncidentNotification, IncidentStep
from escalation.selectors import team_members_of

log = get_logger(__name__)

NOTIFY_MAX_ATTEMPTS = 5
STALE_CLAIM = timedelta(minutes=5)
Status = IncidentNotification.Status


def step_notifications_create(*, incident: Incident, step: IncidentStep) -> dict[str, list[str]]:
    """Record who is told of a level step, and enqueue the sending after commit.

    Precondition: the caller holds the incident's row lock and `step` is saved.
    Returns {"notified": usernames with an email address, "unreachable": without}.
    """
    members = team_members_of(team_id=step.team_id, organization_id=incident.organization_id)
    rows = []
    for member in members:
        user = member.membership.user
        address = (user.email or "").strip() if user.is_active else ""
        rows.append(
            IncidentNotification(
                step=step,
                user=user,
                username=user.username,
                address=address,
                status=Status.PENDING if address else Status.SKIPPED,
                error="" if address else "No email address (or inactive user).",
            )
        )
    IncidentNotification.objects.bulk_create(rows, ignore_conflicts=True)
    notified = [r.username for r in rows if r.status == Status.PENDING]
    if notified:
        from escalation.jobs import incident_step_notify

        enqueue_on_commit(incident_step_notify, step.pk, queue=QUEUE_ESCALATION)
    return {"notified": notified, "unreachable": [r.username for r in rows if not r.address]}


def _message(notification: IncidentNotification) -> tuple[str, str]:
    step = notification.step
    incident = step.incident
    snap = incident.rule_snapshot
    subject = (
        f"[{incident.organization.slug}] Incident {snap.get('code')} escalated to "
        f"level {step.level}"
    )
    triggers = ", ".join(f"{t['service']}/{t['status']}" for t in snap.get("triggers", []))
    body = "\n".join(
        [
            f"Rule {snap.get('code')} {snap.get('name') or ''}".rstrip(),
            f"Triggers: {triggers}",
            f"Level {step.level} ({step.reason}), team {step.team.slug if step.team else '-'}",
            f"Occurrences: {step.occurrences}, open for {round(step.elapsed_seconds / 60, 1)} min",
            f"Incident: {settings.PUBLIC_BASE_URL}/api/incidents/{incident.uuid}/",
            "Acknowledge it to stop further escalation.",
        ]
    )
    return subject, body


def _send_one(notification_id: int) -> tuple[str, Any] | None:
    """Claim, send, record one notification. Returns (new status, retry time) or None
    when there was nothing to claim (sent, claimed elsewhere or not due)."""
    from django.core.mail import send_mail

    now = timezone.now()
    claimed = (
        IncidentNotification.objects.filter(pk=notification_id, status=Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(status=Status.SENDING, attempts=F("attempts") + 1, claimed_at=now)
    )
    if not claimed:
        return None
    n = IncidentNotification.objects.select_related(
        "step__team", "step__incident__organization"
    ).get(pk=notification_id)
    subject, body = _message(n)
    try:
        send_mail(subject, body, None, [n.address], fail_silently=False)
        error = ""
    except Exception as exc:  # any backend error is recorded and retried
        error = f"{type(exc).__name__}: {exc}"[:500]
    # The outbox's one decision (no deadline: NOTIFY_MAX_ATTEMPTS tries at most).
    decision = retry_decision(
        "transient" if error else "ok",
        n.attempts,
        None,
        timezone.now(),
        max_attempts=NOTIFY_MAX_ATTEMPTS,
    )
    status, retry_at = Status(decision.status), decision.retry_at
    IncidentNotification.objects.filter(pk=n.pk, status=Status.SENDING).update(
        status=status,
        error=error,
        next_attempt_at=retry_at,
        sent_at=timezone.now() if status == Status.SENT else None,
    )
    log.info(
        "incident_notification",
        notification_id=n.pk,
        incident_id=n.step.incident_id,
        step_id=n.step_id,
        level=n.step.level,
        channel=n.channel,
        username=n.username,
        attempt=n.attempts,
        status=status,
        error=error or None,
    )
    return status, retry_at


def step_notify(*, step_id: int) -> int:
    """Job body: send the step's due pending notifications. Returns how many were sent.
    Runs outside any transaction (one short UPDATE per state change)."""
    now = timezone.now()
    due = list(
        IncidentNotification.objects.filter(step_id=step_id, status=Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .values_list("pk", flat=True)
    )
    sent, retries = 0, []
    for notification_id in due:
        result = _send_one(notification_id)
        if result is None:
            continue
        status, retry_at = result
        sent += status == Status.SENT
        if retry_at is not None:
            retries.append(retry_at)
    if retries:
        from escalation.jobs import incident_step_notify

        enqueue_now(incident_step_notify, step_id, queue=QUEUE_ESCALATION, at=min(retries))
    return sent


def notifications_overdue(*, grace: timedelta = timedelta(seconds=30)) -> list[int]:
    """Sweeper: put claims of dead workers back to pending; return the steps with
    notifications due for more than `grace` (a lost job). The caller enqueues."""
    now = timezone.now()
    reclaimed = IncidentNotification.objects.filter(
        status=Status.SENDING, claimed_at__lt=now - STALE_CLAIM
    ).update(status=Status.PENDING, next_attempt_at=None)
    if reclaimed:
        log.warning("incident_notifications_reclaimed", count=reclaimed)
    limit = now - grace
    return sorted(
        set(
            IncidentNotification.objects.filter(status=Status.PENDING)
            .filter(
                Q(next_attempt_at__lt=limit)
                | Q(next_attempt_at__isnull=True, created_at__lt=limit)
                | Q(next_attempt_at__isnull=True, claimed_at__isnull=False)
            )
            .values_list("step_id", flat=True)[:1000]
        )
    )
