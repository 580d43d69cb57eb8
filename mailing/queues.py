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


def _urgent(priority: int, kind: str) -> bool:
    # A notification is transactional and small (a few clients, sent at its time): it
    # runs on `mailing_high` whatever its priority, like a priority >= 8 campaign.
    return kind == Mailing.Kind.NOTIFICATION or priority >= settings.MAILING_HIGH_PRIORITY


def mailing_queue(priority: int, kind: str = "") -> str:
    """The RQ queue of a mailing's jobs: workers take `mailing_high` before `mailing`."""
    return QUEUE_MAILING_HIGH if _urgent(priority, kind) else QUEUE_MAILING


def urgent_work_waiting(priority: int, kind: str = "") -> bool:
    """True when a lower-priority lane should give its worker back right away."""
    if _urgent(priority, kind):
        return False
    return bool(get_redis().llen(get_queue(QUEUE_MAILING_HIGH).key))


def lanes_enqueue_on_commit(mailing: Mailing) -> None:
    """Enqueue every lane of a mailing once the transaction commits."""
    queue = mailing_queue(mailing.priority, mailing.kind)
    for lane in range(settings.MAILING_LANES):
        enqueue_on_commit(mailing_dispatch, mailing.pk, lane, queue=queue)


def lane_enqueue(mailing_id: int, lane: int, at: datetime | None = None) -> None:
    """Enqueue one lane now (outside any transaction), to run at `at` if given."""
    found = Mailing.objects.filter(pk=mailing_id).values_list("priority", "kind").first()
    queue = mailing_queue(*found) if found is not None else mailing_queue(0)
    enqueue_now(mailing_dispatch, mailing_id, lane, queue=queue, at=at)
