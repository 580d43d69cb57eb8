"""RQ entry points for escalation: thin, take ids, idempotent.

Each imports its service inside, as every app's jobs do: the services enqueue these
functions (`incidents`, `evaluate`, `notifications` import this module), and a job
re-reads its state from the ids when it runs.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from core.jobs import QUEUE_ESCALATION, enqueue_now
from escalation.models import Incident


def triggers_evaluate(organization_id: int) -> int:
    from escalation.evaluate import triggers_evaluate as evaluate

    return evaluate(organization_id=organization_id)


def incident_check(incident_id: int, token: str) -> None:
    from escalation.incidents import incident_check as check

    check(incident_id=incident_id, token=token)


def escalation_sweep() -> int:
    """Cron: what a lost job, a Redis restart or a stopped worker left behind.

    Incidents whose time-based check is overdue are checked now (the check is
    idempotent: steps fire once), organizations with unevaluated batches are
    evaluated, and team notifications left pending (or claimed by a dead worker) are
    sent.
    """
    from escalation.evaluate import batches_overdue
    from escalation.incidents import incident_check as check
    from escalation.notifications import notifications_overdue

    overdue = list(
        Incident.objects.filter(
            status=Incident.Status.OPEN,
            next_check_at__lt=timezone.now() - timedelta(seconds=5),
        ).values_list("pk", flat=True)[:1000]
    )
    for incident_id in overdue:
        check(incident_id=incident_id, token=None)
    organizations = batches_overdue()
    for organization_id in organizations:
        enqueue_now(triggers_evaluate, organization_id, queue=QUEUE_ESCALATION)
    steps = notifications_overdue()
    for step_id in steps:
        enqueue_now(incident_step_notify, step_id, queue=QUEUE_ESCALATION)
    return len(overdue) + len(organizations) + len(steps)


def incident_step_notify(step_id: int) -> int:
    """Email the team members of a level step (idempotent: sends only what is pending)."""
    from escalation.notifications import step_notify

    return step_notify(step_id=step_id)
