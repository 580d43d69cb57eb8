"""The circuit breakers of the dispatch: one per transport, shared by every lane of every
mailing (one Redis hash each, `mailing:breaker:<transport>`).

An SMTP outage must not stop SMS mailings, nor a sender API outage email ones: a batch's
results are judged per transport, and a lane claims only the messages of transports
whose breaker is closed. One implementation, keyed by transport.

A batch that fails mostly with transient errors on one transport opens that transport's
breaker for an exponentially growing, jittered delay (`core.sender.backoff_delay` of its
trip count); those messages go back to `pending` with their attempt refunded. When it
closes, lanes send a small probe batch first: a probe that succeeds closes it, one that
fails opens it again for longer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from core.logging import get_logger
from core.redis import get_redis
from core.sender import SendResult, backoff_delay
from mailing.dispatch.counters import BREAKER_TRIPS
from mailing.models import Transport

log = get_logger(__name__)

BREAKER_KEY = "mailing:breaker"  # the prefix of each transport's key


def breaker_key(transport: str) -> str:
    if transport not in Transport.values:  # never a key built from anything else
        raise ValueError(f"unknown transport {transport!r}")
    return f"{BREAKER_KEY}:{transport}"


BREAKER_KEYS = tuple(breaker_key(t) for t in Transport.values)


@dataclass(frozen=True)
class Breaker:
    open_until: float
    trips: int


CLOSED = Breaker(open_until=0.0, trips=0)


def _decode(raw: Any) -> Breaker:
    return Breaker(
        open_until=float(raw.get(b"open_until", 0) or 0), trips=int(raw.get(b"trips", 0) or 0)
    )


def breaker_state(transport: str = Transport.SMS) -> Breaker:
    return _decode(get_redis().hgetall(breaker_key(transport)))


def breaker_states() -> dict[str, Breaker]:
    """Every transport's breaker, in one round trip."""
    pipe = get_redis().pipeline(transaction=False)
    for transport in Transport.values:
        pipe.hgetall(breaker_key(transport))
    return {t: _decode(raw) for t, raw in zip(Transport.values, pipe.execute(), strict=True)}


def breaker_update(
    previous: Breaker,
    results: Sequence[SendResult],
    *,
    transport: str,
    mailing_id: int,
    message_ids: list[int],
) -> float | None:
    """Trip or close `transport`'s breaker after a batch's results on that transport;
    returns the time it is open until if these results tripped it, else None."""
    transient = sum(1 for r in results if r.outcome == "transient")
    ratio = transient / len(results) if results else 0.0
    if ratio >= settings.MAILING_BREAKER_RATIO and (
        transient >= settings.MAILING_BREAKER_MIN_FAILURES or previous.trips > 0
    ):
        return _trip(previous, transport=transport, mailing_id=mailing_id, message_ids=message_ids)
    if previous.trips > 0 and results:
        get_redis().delete(breaker_key(transport))
        log.info(
            "mailing_breaker_closed",
            transport=transport,
            mailing_id=mailing_id,
            probe_message_ids=message_ids,
        )
    return None


def _trip(previous: Breaker, *, transport: str, mailing_id: int, message_ids: list[int]) -> float:
    trips = previous.trips + 1
    open_until = time.time() + backoff_delay(trips)
    get_redis().hset(breaker_key(transport), mapping={"open_until": open_until, "trips": trips})
    BREAKER_TRIPS.inc()
    log.warning(
        "mailing_breaker_open",
        transport=transport,
        mailing_id=mailing_id,
        message_ids=message_ids,
        trips=trips,
        seconds=round(open_until - time.time(), 2),
    )
    return open_until
