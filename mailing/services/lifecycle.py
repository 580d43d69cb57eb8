"""A mailing's lifecycle transitions, each made by exactly one function here.

    SCHEDULED --mailings_start--> RUNNING --mailing_finish_if_done--> FINISHED
    SCHEDULED | RUNNING --mailing_cancel--> CANCELLED

`mailings_start` is called by the start job (`materialize.mailing_start`, one
mailing) and by the cron sweeper (every due one: whatever happened to its job);
`mailing_finish_if_done` by the materializer (empty audience), the lanes and the
sweeper. Each transition is a conditional UPDATE, so two callers never both make it,
and each is published (`mailing_finished`) from here.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from core.events import publish_on_commit
from core.jobs import enqueue_on_commit
from core.logging import get_logger
from core.models import Delivery
from mailing.jobs import mailing_start
from mailing.models import Mailing, MailingMessage
from mailing.queues import mailing_queue
from mailing.representations import mailing_event_data
from mailing.selectors import mailing_counts

log = get_logger(__name__)


def mailing_schedule_start(mailing: Mailing, now: datetime) -> None:
    """Enqueue the start job (on commit) for the mailing's start time.

    A notification's jobs go to `mailing_high` whatever its priority
    (`mailing.queues.mailing_queue`): its start is one short job (its audience is a few
    clients, sent by the job itself), which a worker takes before any campaign's lane,
    and a running campaign's lane hands its worker back after its batch in flight, so a
    `send_at` is met within about a second."""
    queue = mailing_queue(mailing.priority, mailing.kind)
    if mailing.start_at <= now:
        enqueue_on_commit(mailing_start, mailing.pk, queue=queue)
    else:
        # The cron sweeper starts it too if this job is lost (e.g. Redis restarted).
        enqueue_on_commit(mailing_start, mailing.pk, queue=queue, at=mailing.start_at)


def mailings_start(
    *, now: datetime, mailing_ids: list[int] | None = None, by: str = "job", limit: int = 100
) -> list[tuple[int, int]]:
    """Move due scheduled mailings (those of `mailing_ids`, or any) to running, once.

    Returns (id, priority) of the mailings this call started, highest priority first;
    the caller materializes them (inline or by a job).
    """
    with transaction.atomic():
        # The sweeper skips a row another transaction holds (it comes back in seconds);
        # the start job of one mailing waits for it.
        due = Mailing.objects.select_for_update(skip_locked=mailing_ids is None).filter(
            status=Mailing.Status.SCHEDULED, start_at__lte=now
        )
        if mailing_ids is not None:
            due = due.filter(pk__in=mailing_ids)
        rows = list(due.order_by("-priority", "start_at").values_list("pk", "priority")[:limit])
        # One conditional UPDATE per mailing: exact about who started it, on any database.
        started = {
            pk
            for pk, _ in rows
            if Mailing.objects.filter(pk=pk, status=Mailing.Status.SCHEDULED).update(
                status=Mailing.Status.RUNNING, started_at=now, updated_at=now
            )
        }
    for pk, _ in rows:
        if pk in started:
            log.info("mailing_started", mailing_id=pk, by=by)
    return [(pk, priority) for pk, priority in rows if pk in started]


def mailing_publish_finished(mailing: Mailing) -> None:
    """Publish `mailing_finished` (after commit) for a finished or cancelled mailing."""
    publish_on_commit(
        mailing.organization_id,
        "mailing_finished",
        mailing_event_data(mailing, mailing_counts(mailing_id=mailing.pk)),
    )


def mailing_publish_updated(mailing: Mailing) -> None:
    """Publish `update_mailing` (after commit): a mailing created or edited, whole, so
    every console shows its name and dates without reloading."""
    publish_on_commit(
        mailing.organization_id,
        "update_mailing",
        mailing_event_data(mailing, mailing_counts(mailing_id=mailing.pk)),
    )


def mailing_finish_if_done(*, mailing_id: int) -> bool:
    """Mark a fully materialized mailing finished once nothing is pending or in flight."""
    with transaction.atomic():
        mailing = Mailing.objects.filter(
            pk=mailing_id, status=Mailing.Status.RUNNING, materialized_at__isnull=False
        ).first()
        if mailing is None:
            return False
        if Delivery.objects.filter(
            mailing_message__mailing_id=mailing_id,
            status__in=(Delivery.Status.PENDING, Delivery.Status.SENDING),
        ).exists():
            return False
        now = timezone.now()
        if not Mailing.objects.filter(pk=mailing_id, status=Mailing.Status.RUNNING).update(
            status=Mailing.Status.FINISHED, finished_at=now, updated_at=now
        ):
            return False
        mailing.status, mailing.finished_at = Mailing.Status.FINISHED, now
        log.info("mailing_finished", mailing_id=mailing_id)
        mailing_publish_finished(mailing)
    return True


@transaction.atomic
def mailing_cancel(*, mailing: Mailing) -> Mailing:
    """Stop a mailing: nothing pending is sent any more (in-flight calls finish)."""
    locked = Mailing.objects.select_for_update().get(pk=mailing.pk)
    if locked.status in (Mailing.Status.FINISHED, Mailing.Status.CANCELLED):
        return locked
    now = timezone.now()
    pending = list(
        Delivery.objects.filter(
            pk__in=MailingMessage.objects.filter(mailing=locked).values("pk"),
            status=Delivery.Status.PENDING,
        ).values_list("pk", flat=True)
    )
    expired = Delivery.objects.filter(pk__in=pending, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.EXPIRED, last_error="mailing cancelled", updated_at=now
    )
    locked.status = Mailing.Status.CANCELLED
    locked.finished_at = now
    locked.save(update_fields=["status", "finished_at", "updated_at"])
    log.info(
        "mailing_cancelled",
        mailing_id=locked.pk,
        organization_id=locked.organization_id,
        expired=expired,
        expired_message_ids=pending,
    )
    mailing_publish_finished(locked)
    return locked
