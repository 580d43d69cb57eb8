"""Job helpers: queue names and the only way to enqueue (after commit).

Jobs take ids, never model instances, and re-read state when they run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from rq import Queue
from rq.registry import ScheduledJobRegistry

from core.logging import get_logger
from core.redis import get_redis, is_cluster_url
from core.resilience import REDIS_ERRORS

log = get_logger(__name__)

QUEUE_DEFAULT = "default"
QUEUE_CHAT = "chat"
QUEUE_MAILING = "mailing"
# High-priority mailings and notifications (priority >= MAILING_HIGH_PRIORITY).
QUEUE_MAILING_HIGH = "mailing_high"
QUEUE_ESCALATION = "escalation"
# Order matters: the worker takes interactive chat work before bulk campaigns, and
# urgent mailings before the rest.
ALL_QUEUES = (QUEUE_CHAT, QUEUE_ESCALATION, QUEUE_DEFAULT, QUEUE_MAILING_HIGH, QUEUE_MAILING)
# Work someone waits for (a chat message, an incident notification, a notification at its
# send_at, a priority >= MAILING_HIGH_PRIORITY mailing): the Procfile's `urgent` worker
# serves only these (`run_worker --queues urgent`), so it is never busy with a campaign's
# batch or a sweep when one comes due; the `worker` processes serve every queue.
URGENT_QUEUES = (QUEUE_CHAT, QUEUE_ESCALATION, QUEUE_MAILING_HIGH)
QUEUE_SETS = {"all": ALL_QUEUES, "urgent": URGENT_QUEUES}


def get_queue(name: str = QUEUE_DEFAULT) -> Queue:
    """A queue on `get_redis()`: the one connection, so RQ follows a Sentinel failover."""
    if is_cluster_url(settings.REDIS_URL):
        # RQ moves a job between keys of different slots in one MULTI (queue, registries).
        raise ImproperlyConfigured("REDIS_URL: RQ needs one primary, not a Redis Cluster")
    return Queue(name, connection=get_redis(), default_timeout=settings.RQ_DEFAULT_TIMEOUT)


def enqueue_now(
    job: Callable[..., Any],
    *ids: int | str,
    queue: str = QUEUE_DEFAULT,
    at: datetime | None = None,
    job_id: str | None = None,
) -> None:
    """Enqueue immediately. Only for code already running after commit (jobs, cron).

    With `at`, the job is scheduled for that exact time, never earlier: RQ scores a
    scheduled job by its time truncated to the second (up to a second early), so the
    score is rewritten, in the same transaction, with the fraction. The worker's
    scheduler (core/workers.py `PreciseScheduler`) compares it with the exact clock;
    RQ's stock scheduler compares it with whole seconds, i.e. rounds it up.
    """
    q = get_queue(queue)
    if at is not None:
        with q.connection.pipeline() as pipe:
            scheduled = q.enqueue_at(at, job, *ids, job_id=job_id, pipeline=pipe)
            pipe.zadd(ScheduledJobRegistry(queue=q).key, {scheduled.id: at.timestamp()})
            pipe.execute()
    else:
        q.enqueue(job, *ids, job_id=job_id)


def enqueue_on_commit(
    job: Callable[..., Any],
    *ids: int | str,
    queue: str = QUEUE_DEFAULT,
    at: datetime | None = None,
    job_id: str | None = None,
) -> None:
    """Enqueue `job(*ids)` once the current transaction commits (at `at` if given).

    If Redis refuses, the failure is logged (`enqueue_failed`) and not raised: the
    change is committed and answering it as an error would make the caller retry a
    write that happened. The committed row is still there and the sweeper jobs pick it
    up, so the work is late, not lost.
    """

    def _enqueue() -> None:
        try:
            enqueue_now(job, *ids, queue=queue, at=at, job_id=job_id)
        except REDIS_ERRORS as exc:
            # An outage: one line per lost enqueue (with its ids), no traceback.
            log.warning(
                "enqueue_failed",
                job=getattr(job, "__name__", str(job)),
                ids=ids,
                error=f"{type(exc).__name__}: {exc}",
            )
        except Exception:
            log.exception("enqueue_failed", job=getattr(job, "__name__", str(job)), ids=ids)

    transaction.on_commit(_enqueue)
