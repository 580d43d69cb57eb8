"""Level k notifies team k: one `IncidentNotification` row per member and channel,
created with the step (under the incident's row lock), sent by a job after commit.

The rows are an outbox channel (core.outbox): the job claims each due row with a
token (a second run, or a duplicate job, finds nothing pending and sends nothing),
hands the email to Django's backend (`core.outbox.email.email_send`) and records the
attempt, an `IncidentNotificationAttempt` row per try, only if its claim still holds.
A failure is retried with the sender's backoff up to `NOTIFY_MAX_ATTEMPTS` (decided by
`core.outbox.retry_decision`, as every outbound message is). A worker killed between
claim and outcome leaves the row `sending`; the sweeper (`notifications_overdue`, run
by `escalation_sweep`) puts it back to `pending` after `STALE_CLAIM` (at least once:
the only case that can email twice), and a late worker cannot overwrite it.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import formats, timezone, translation
from django.utils.translation import gettext, ngettext

from core.i18n import user_language
from core.jobs import QUEUE_ESCALATION, enqueue_now, enqueue_on_commit
from core.logging import get_logger
from core.outbox import (
    Outbox,
    Recorded,
    new_claim_token,
    outbox_claim,
    outbox_record,
    outbox_sweep,
)
from core.outbox.email import email_send
from escalation.jobs import incident_step_notify
from escalation.models import (
    Incident,
    IncidentNotification,
    IncidentNotificationAttempt,
    IncidentStep,
)
from escalation.selectors import team_members_of

log = get_logger(__name__)

NOTIFY_MAX_ATTEMPTS = 5
STALE_CLAIM = timedelta(minutes=5)
Status = IncidentNotification.Status

NOTIFICATIONS = Outbox(
    name="incident_notifications",
    model=IncidentNotification,
    attempt_model=IncidentNotificationAttempt,
    attempt_fk="notification",
    item="incident_notification",
    items="incident_notifications",
    id_field="notification_id",
    max_attempts=lambda: NOTIFY_MAX_ATTEMPTS,
    stale_after=lambda: STALE_CLAIM,
    grace=lambda: timedelta(seconds=30),
    select_related=("step__team", "step__incident__organization"),
    log_fields=lambda n: {
        "incident_id": n.step.incident_id,
        "step_id": n.step_id,
        "level": n.step.level,
        "channel": n.channel,
        "username": n.username,
    },
)


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
                last_error="" if address else "No email address (or inactive user).",
            )
        )
    IncidentNotification.objects.bulk_create(rows, ignore_conflicts=True)
    notified = [r.username for r in rows if r.status == Status.PENDING]
    if notified:
        enqueue_on_commit(incident_step_notify, step.pk, queue=QUEUE_ESCALATION)
    return {"notified": notified, "unreachable": [r.username for r in rows if not r.address]}


def _message(notification: IncidentNotification) -> tuple[str, str]:
    """Subject and body in the recipient's saved language (English without one)."""
    with translation.override(user_language(notification.user_id) or settings.LANGUAGE_CODE):
        return _message_text(notification)


def _message_text(notification: IncidentNotification) -> tuple[str, str]:
    step = notification.step
    incident = step.incident
    snap = incident.rule_snapshot
    subject = gettext("[%(organization)s] Incident %(code)s escalated to level %(level)d") % {
        "organization": incident.organization.slug,
        "code": snap.get("code"),
        "level": step.level,
    }
    triggers = ", ".join(f"{t['service']}/{t['status']}" for t in snap.get("triggers", []))
    minutes = formats.number_format(round(step.elapsed_seconds / 60, 1), use_l10n=True)
    body = "\n".join(
        [
            (
                gettext("Rule %(code)s %(name)s")
                % {"code": snap.get("code"), "name": snap.get("name") or ""}
            ).rstrip(),
            gettext("Triggers: %(triggers)s") % {"triggers": triggers},
            gettext("Level %(level)d (%(reason)s), team %(team)s")
            % {
                "level": step.level,
                "reason": step.reason,
                "team": step.team.slug if step.team else "-",
            },
            ngettext(
                "%(count)d occurrence, open for %(minutes)s min",
                "%(count)d occurrences, open for %(minutes)s min",
                step.occurrences,
            )
            % {"count": step.occurrences, "minutes": minutes},
            gettext("Incident: %(url)s")
            % {"url": f"{settings.PUBLIC_BASE_URL}/api/incidents/{incident.uuid}/"},
            gettext("Acknowledge it to stop further escalation."),
        ]
    )
    return subject, body


def _send_one(notification_id: int) -> Recorded | None:
    """Claim, send, record one notification. None when there was nothing to claim
    (sent, claimed elsewhere or not due)."""
    token = new_claim_token()
    n: IncidentNotification | None = outbox_claim(
        NOTIFICATIONS, item_id=notification_id, token=token
    )
    if n is None:
        return None
    subject, body = _message(n)
    result = email_send(subject=subject, body=body, address=n.address)
    with transaction.atomic():
        return outbox_record(NOTIFICATIONS, item=n, token=token, result=result)


def step_notify(*, step_id: int) -> int:
    """Job body: send the step's due pending notifications. Returns how many were sent.
    Call outside a transaction: no lock is held while an email is handed over."""
    now = timezone.now()
    due = list(
        IncidentNotification.objects.filter(step_id=step_id, status=Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .values_list("pk", flat=True)
    )
    sent, retries = 0, []
    for notification_id in due:
        recorded = _send_one(notification_id)
        if recorded is None or not recorded.applied:
            continue
        sent += recorded.status == Status.SENT
        if recorded.retry_at is not None:
            retries.append(recorded.retry_at)
    if retries:
        enqueue_now(incident_step_notify, step_id, queue=QUEUE_ESCALATION, at=min(retries))
    return sent


def notifications_overdue() -> list[int]:
    """Sweeper (core.outbox's, for this channel): claims of dead workers put back to
    pending, and notifications due for too long (a lost job). Returns their steps; the
    caller enqueues."""
    ids = outbox_sweep(NOTIFICATIONS)
    return sorted(
        set(IncidentNotification.objects.filter(pk__in=ids).values_list("step_id", flat=True))
    )
