"""Which RQ queue a mailing's jobs go to, and enqueueing its dispatch lanes.

Shared by the services (a mailing's start and first lanes) and the dispatch (a lane
handing over to its next job, the sweeper resuming lanes): it sits below both.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from core.jobs import QUEUE_MAILING, QUEUE_MAILING_HIGH, enqueue_now, enqueue_on_commit, get_queue
from core.redis import get_redis
from mailing.jobs import mailing_dispatch
from mailing.models import Mailing


def mailing_queue(priority: int) -> str:
    """The RQ queue of a mailing's jobs: workers take `mailing_high` before `mailing`."""
    return QUEUE_MAILING_HIGH if priority >= settings.MAILING_HIGH_PRIORITY else QUEUE_MAILING


def urgent_work_waiting(priority: int) -> bool:
    """True when a lower-priority lane should give its worker back right away."""
    if priority >= settings.MAILING_HIGH_PRIORITY:
        return False
    return bool(get_redis().llen(get_queue(QUEUE_MAILING_HIGH).key))


def lanes_enqueue_on_commit(mailing: Mailing) -> None:
    """Enqueue every lane of a mailing once the transaction commits."""
    for lane in range(settings.MAILING_LANES):
        enqueue_on_commit(mailing_dispatch, mailing.pk, lane, queue=mailing_queue(mailing.priority))


def lane_enqueue(mailing_id: int, lane: int, at: datetime | None = None) -> None:
    """Enqueue one lane now (outside any transaction), to run at `at` if given."""
    priority = Mailing.objects.filter(pk=mailing_id).values_list("priority", flat=True).first()
    queue = mailing_queue(priority if priority is not None else 0)
    enqueue_now(mailing_dispatch, mailing_id, lane, queue=queue, at=at)
