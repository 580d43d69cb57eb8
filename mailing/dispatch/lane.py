"""One lane of one mailing: the dispatch job's loop (see `mailing.dispatch`).

Pipelined: while a batch's HTTP calls run in the event loop thread, this thread
records the previous batch and claims the next one, so the database and the sender
work at the same time. Every database call stays in the job's thread (Django
connections are per thread); only HTTP runs in the loop thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from core.logging import get_logger
from core.outbox import new_claim_token
from core.sender import SendResult
from mailing.dispatch.batch import Row, claim, defer_outside_window, end_guard, record, send_all
from mailing.dispatch.breaker import Breaker, breaker_states
from mailing.dispatch.counters import BATCH_SECONDS, BATCH_SIZE
from mailing.dispatch.email import Transports
from mailing.dispatch.lease import lane_key, lease_acquire, lease_handover
from mailing.dispatch.progress import expire_remaining, next_due, progress_publish_throttled
from mailing.models import Mailing
from mailing.queues import lane_enqueue, urgent_work_waiting
from mailing.services.lifecycle import mailing_finish_if_done
from mailing.transport import SenderPool

log = get_logger(__name__)


def open_sender() -> Transports:
    """The sender clients of one job (SMS, and email on first use); build them inside
    the event loop that uses them."""
    return Transports(
        SenderPool(
            url=settings.SENDER_URL,
            token=settings.SENDER_TOKEN,
            concurrency=settings.MAILING_CONCURRENCY,
            timeout=settings.SENDER_TIMEOUT,
        )
    )


@dataclass(frozen=True)
class Next:
    at: datetime | None = None  # run again at this time (now if `now`)
    now: bool = False
    stop: bool = False


class LoopThread:
    """An event loop in its own thread: HTTP runs there while this thread does SQL."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class _InFlight:
    rows: list[Row]
    future: concurrent.futures.Future[list[SendResult]]
    breakers: dict[str, Breaker]
    claimed_at: float
    claim_ms: float


def _complete(batch: _InFlight, *, mailing_id: int, lane: int, token: str, org_id: int) -> None:
    """Wait for a batch's HTTP calls and record them."""
    results = batch.future.result()
    t2 = time.perf_counter()
    BATCH_SECONDS.labels("send").observe(t2 - batch.claimed_at)
    outcome = record(
        mailing_id=mailing_id,
        rows=batch.rows,
        results=results,
        token=token,
        breakers=batch.breakers,
    )
    t3 = time.perf_counter()
    BATCH_SECONDS.labels("record").observe(t3 - t2)
    BATCH_SECONDS.labels("total").observe(t3 - batch.claimed_at + batch.claim_ms / 1000)
    log.info(
        "mailing_batch",
        mailing_id=mailing_id,
        lane=lane,
        claimed=len(batch.rows),
        sent=outcome.sent,
        retry=outcome.retry,
        failed=outcome.failed,
        expired=outcome.expired,
        breaker_tripped=outcome.tripped,
        breaker_open_until=outcome.breaker_until or None,
        claim_ms=round(batch.claim_ms, 1),
        send_wait_ms=round((t2 - batch.claimed_at) * 1000, 1),
        record_ms=round((t3 - t2) * 1000, 1),
    )
    progress_publish_throttled(mailing_id, org_id)


_MAILING_FIELDS = (
    "status",
    "end_at",
    "window_start",
    "window_end",
    "organization_id",
    "priority",
    "promo",
    "kind",
)


def _lane_loop(loop: LoopThread, sender: Any, mailing_id: int, lane: int, token: str) -> Next:
    """Claim, send, record; the next batch is claimed and sent while the last records."""
    key = lane_key(mailing_id, lane)
    slice_end = time.monotonic() + settings.MAILING_SLICE_SECONDS
    inflight: _InFlight | None = None
    org_id = 0

    def drain() -> None:
        nonlocal inflight
        if inflight is not None:
            _complete(inflight, mailing_id=mailing_id, lane=lane, token=token, org_id=org_id)
            inflight = None

    try:
        while True:
            mailing = Mailing.objects.filter(pk=mailing_id).values(*_MAILING_FIELDS).first()
            if mailing is not None and mailing["status"] == Mailing.Status.CANCELLED:
                drain()  # a batch in flight may put rows back to pending: expire them too
                expire_remaining(mailing_id=mailing_id, reason="mailing cancelled")
                return Next(stop=True)
            if mailing is None or mailing["status"] != Mailing.Status.RUNNING:
                return Next(stop=True)
            org_id = mailing["organization_id"]
            now = timezone.now()
            if mailing["end_at"] <= now + end_guard():
                drain()
                expire_remaining(mailing_id=mailing_id)
                mailing_finish_if_done(mailing_id=mailing_id)
                return Next(stop=True)
            # One breaker per transport: an SMTP outage leaves SMS messages going, and
            # the other way round. Claim only the transports whose breaker is closed.
            breakers = breaker_states()
            clock = time.time()
            blocked = {t: b.open_until for t, b in breakers.items() if b.open_until > clock}
            usable = [t for t in breakers if t not in blocked]
            if not usable:
                return Next(at=datetime.fromtimestamp(min(blocked.values()), tz=now.tzinfo))
            if urgent_work_waiting(mailing["priority"], mailing["kind"]):
                # A high-priority job is queued (an urgent mailing, a notification's
                # start): this lane goes back to the end of its queue without claiming
                # another batch (the one in flight is recorded on the way out), so the
                # worker takes the urgent one after one batch at most.
                log.info("mailing_lane_yielded", mailing_id=mailing_id, lane=lane)
                return Next(now=True)
            probing = any(breakers[t].trips for t in usable)
            size = settings.MAILING_PROBE_SIZE if probing else settings.MAILING_BATCH_SIZE
            if probing:
                drain()  # probe alone, not beside a batch sent before the outage
            t0 = time.perf_counter()
            rows = claim(
                mailing_id=mailing_id,
                token=token,
                size=size,
                now=now,
                promo=mailing["promo"],
                transports=usable if blocked else None,
            )
            claim_ms = (time.perf_counter() - t0) * 1000
            BATCH_SECONDS.labels("claim").observe(claim_ms / 1000)
            if rows:
                BATCH_SIZE.observe(len(rows))
                rows = defer_outside_window(rows, dict(mailing), mailing_id, token, now)
            previous, inflight = inflight, None
            if rows:
                inflight = _InFlight(
                    rows=rows,
                    future=loop.submit(send_all(sender, rows)),
                    breakers=breakers,
                    claimed_at=time.perf_counter(),
                    claim_ms=claim_ms,
                )
            if previous is not None:
                _complete(previous, mailing_id=mailing_id, lane=lane, token=token, org_id=org_id)
            elif inflight is None:
                due = next_due(mailing_id, transports=usable if blocked else None)
                # The rest waits for a breaker: come back when the first one closes.
                reopen = (
                    datetime.fromtimestamp(min(blocked.values()), tz=now.tzinfo)
                    if blocked
                    else None
                )
                if due is None:
                    if mailing_finish_if_done(mailing_id=mailing_id):
                        return Next(stop=True)
                    # In flight elsewhere, the audience still being materialized, or
                    # messages of a transport whose breaker is open.
                    return Next(at=reopen or now + timedelta(seconds=1))
                if reopen is not None:
                    due = min(due, reopen)
                return Next(at=max(due, now + timedelta(milliseconds=200)))
            if not lease_acquire(key, token):  # refresh; lost: another job owns the lane
                log.warning("mailing_lane_lost", mailing_id=mailing_id, lane=lane)
                return Next(stop=True)
            if time.monotonic() > slice_end:
                return Next(now=True)  # give the worker back to other queued jobs
    finally:
        drain()


async def _built_in_loop() -> Any:
    return open_sender()  # its connections belong to the loop that will use them


def mailing_dispatch(*, mailing_id: int, lane: int = 0) -> None:
    """Job body: run one lane of a mailing for a time slice, then hand over."""
    key = lane_key(mailing_id, lane)
    token = new_claim_token()
    if not lease_acquire(key, token):
        log.info("mailing_lane_busy", mailing_id=mailing_id, lane=lane)
        return
    nxt = Next(stop=True)
    try:
        loop = LoopThread()
        try:
            sender = loop.submit(_built_in_loop()).result()
            try:
                nxt = _lane_loop(loop, sender, mailing_id, lane, token)
            finally:
                loop.submit(sender.aclose()).result(10)
        finally:
            loop.close()
    finally:
        if nxt.stop:
            lease_handover(key, token, 0)
        else:
            at = None if nxt.now else nxt.at
            wait = (at - timezone.now()).total_seconds() if at is not None else 0.0
            lease_handover(key, token, int(max(wait, 0)) + 60)
            lane_enqueue(mailing_id, lane, at=at)
