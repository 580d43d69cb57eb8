"""The cron sweeper: the database is the source of truth for mailings.

Every few seconds (`core.cron`) it starts due mailings whatever happened to their
scheduled job, reclaims deliveries a killed worker left `sending`, resumes an
unfinished materialization, re-enqueues lanes no live job holds, expires what passed
its end time and finishes what is done.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.jobs import enqueue_now, enqueue_on_commit
from core.logging import get_logger
from core.models import Delivery
from core.outbox import delivery_reclaim_stale
from core.redis import get_redis
from mailing.dispatch.batch import end_guard
from mailing.dispatch.counters import RECLAIMED
from mailing.dispatch.lease import lane_key, lease_schedule
from mailing.dispatch.progress import expire_remaining, next_due
from mailing.jobs import mailing_materialize
from mailing.models import Mailing, MailingMessage
from mailing.queues import lane_enqueue, mailing_queue
from mailing.services.lifecycle import mailing_finish_if_done, mailings_start

log = get_logger(__name__)


def _reclaim() -> int:
    reclaimed = delivery_reclaim_stale(
        source=Delivery.Source.MAILING,
        older_than=timedelta(seconds=settings.SENDER_TIMEOUT * 3),
    )
    RECLAIMED.inc(len(reclaimed))
    if reclaimed:
        by_mailing: dict[int, list[int]] = defaultdict(list)
        for message_id, owner in MailingMessage.objects.filter(pk__in=reclaimed).values_list(
            "pk", "mailing_id"
        ):
            by_mailing[owner].append(message_id)
        for owner, message_ids in by_mailing.items():
            log.warning(
                "mailing_messages_reclaimed", mailing_id=owner, message_ids=sorted(message_ids)
            )
    return len(reclaimed)


def mailing_sweep() -> dict[str, int]:
    """Start, resume, expire and finish mailings (cron, every few seconds)."""
    now = timezone.now()
    report = {"started": 0, "reclaimed": 0, "lanes": 0, "finished": 0}
    ids: dict[str, list[int]] = {"lanes": [], "finished": []}
    with transaction.atomic():
        started = mailings_start(now=now, by="sweeper")
        for mailing_id, priority in started:
            enqueue_on_commit(mailing_materialize, mailing_id, queue=mailing_queue(priority))
    started_ids = [mailing_id for mailing_id, _ in started]
    report["started"] = len(started)
    report["reclaimed"] = _reclaim()
    # A cancelled mailing whose in-flight batch was retried after the cancel (or whose
    # lane died) must not keep `pending` messages forever.
    cancelled = (
        MailingMessage.objects.filter(
            mailing__status=Mailing.Status.CANCELLED, delivery__status=Delivery.Status.PENDING
        )
        .values_list("mailing_id", flat=True)
        .distinct()[:100]
    )
    for mailing_id in list(cancelled):
        expire_remaining(mailing_id=mailing_id, reason="mailing cancelled")
    redis = get_redis()
    running = (
        Mailing.objects.filter(status=Mailing.Status.RUNNING)
        .exclude(pk__in=started_ids)
        .order_by("-priority", "start_at")
        .values("pk", "end_at", "materialized_at", "priority", "kind")[:200]
    )
    for mailing in running:
        mailing_id = mailing["pk"]
        if mailing["materialized_at"] is None:
            if redis.set(f"mailing:materialize:{mailing_id}", 1, nx=True, ex=60):
                enqueue_now(
                    mailing_materialize,
                    mailing_id,
                    queue=mailing_queue(mailing["priority"], mailing["kind"]),
                )
            continue
        if mailing["end_at"] <= now + end_guard():
            expire_remaining(mailing_id=mailing_id)
        if mailing_finish_if_done(mailing_id=mailing_id):
            report["finished"] += 1
            ids["finished"].append(mailing_id)
            continue
        due_at = next_due(mailing_id)
        # Not `now`: next_due answers "now" for never-tried rows with a later clock.
        if due_at is None or due_at > timezone.now():
            continue
        for lane in range(settings.MAILING_LANES):
            if lease_schedule(lane_key(mailing_id, lane)):
                log.info("mailing_lane_resumed", mailing_id=mailing_id, lane=lane)
                lane_enqueue(mailing_id, lane)
                report["lanes"] += 1
                ids["lanes"].append(mailing_id)
    if any(report.values()):
        log.info(
            "mailing_sweep",
            **report,
            started_mailing_ids=started_ids,
            resumed_mailing_ids=sorted(set(ids["lanes"])),
            finished_mailing_ids=ids["finished"],
        )
    return report
