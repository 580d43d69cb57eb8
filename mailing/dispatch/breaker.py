"""The sender circuit breaker, shared by every lane of every mailing (one Redis hash).

A batch that fails mostly with transient errors opens it for an exponentially
growing, jittered delay (`core.sender.backoff_delay` of the trip count); the batch's
messages go back to `pending` with their attempt refunded. When it closes, lanes
send a small probe batch first: a probe that succeeds closes it, one that fails
opens it again for longer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings

from core.logging import get_logger
from core.redis import get_redis
from core.sender import SendResult, backoff_delay
from mailing.dispatch.counters import BREAKER_TRIPS

log = get_logger(__name__)

BREAKER_KEY = "mailing:breaker"


@dataclass(frozen=True)
class Breaker:
    open_until: float
    trips: int


def breaker_state() -> Breaker:
    raw = get_redis().hgetall(BREAKER_KEY)
    return Breaker(
        open_until=float(raw.get(b"open_until", 0) or 0), trips=int(raw.get(b"trips", 0) or 0)
    )


def breaker_update(
    previous: Breaker, results: Sequence[SendResult], *, mailing_id: int, message_ids: list[int]
) -> float | None:
    """Trip or close the breaker after a batch; returns the time it is open until if
    this batch tripped it, else None."""
    transient = sum(1 for r in results if r.outcome == "transient")
    ratio = transient / len(results) if results else 0.0
    if ratio >= settings.MAILING_BREAKER_RATIO and (
        transient >= settings.MAILING_BREAKER_MIN_FAILURES or previous.trips > 0
    ):
        return _trip(previous, mailing_id=mailing_id, message_ids=message_ids)
    if previous.trips > 0 and results:
        get_redis().delete(BREAKER_KEY)
        log.info("mailing_breaker_closed", mailing_id=mailing_id, probe_message_ids=message_ids)
    return None


def _trip(previous: Breaker, *, mailing_id: int, message_ids: list[int]) -> float:
    trips = previous.trips + 1
    open_until = time.time() + backoff_delay(trips)
    get_redis().hset(BREAKER_KEY, mapping={"open_until": open_until, "trips": trips})
    BREAKER_TRIPS.inc()
    log.warning(
        "mailing_breaker_open",
        mailing_id=mailing_id,
        message_ids=message_ids,
        trips=trips,
        seconds=round(open_until - time.time(), 2),
    )
    return open_until
