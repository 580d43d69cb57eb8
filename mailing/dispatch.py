"""Batched, concurrent dispatch of a mailing's messages to the external sender.

One dispatch job drives one *lane* of one mailing (`MAILING_LANES` lanes run in
parallel on different workers). A lane loops, for up to `MAILING_SLICE_SECONDS`:

1. claim up to `MAILING_BATCH_SIZE` due `pending` deliveries of the mailing in one
   short transaction (`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, then one
   conditional UPDATE to `sending` with a fresh claim token);
2. send them with bounded concurrency (`core.sender.send_async` under asyncio), with
   no transaction open;
3. record every attempt and every new status in one short transaction
   (bulk INSERT of attempts, one UPDATE per outcome, fenced by the claim token);

then re-enqueues itself (now, or at the next due retry / window opening). A lane
holds a Redis lease while it runs; if its worker dies, the lease expires, the cron
sweeper reclaims the stale `sending` rows (same msgId, so a resend is harmless)
and enqueues the lane again.

A circuit breaker shared by all lanes (Redis) stops the whole dispatch when a batch
fails mostly with transient errors: the batch's messages go back to `pending` with
their attempt refunded (the attempt rows are still recorded), the breaker stays
open for an exponentially growing, jittered delay, and then a small probe batch
decides whether to close it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, CharField, DateTimeField, F, Min, Q, Value, When
from django.utils import timezone
from prometheus_client import Counter, Histogram

from core.events import publish_on_commit
from core.jobs import QUEUE_MAILING, QUEUE_MAILING_HIGH, enqueue_now, enqueue_on_commit, get_queue
from core.logging import get_logger
from core.models import Delivery
from core.outbox import (
    chain_error,
    delivery_attempts_insert,
    delivery_reclaim_stale,
    new_claim_token,
    outcome_of,
    retry_decision,
)
from core.redis import get_redis
from core.sender import SendResult, async_client, backoff_delay, send_async
from mailing.models import Mailing, MailingMessage
from mailing.transport import SenderPool
from mailing.windows import in_window, next_opening

log = get_logger(__name__)
_stdlog = logging.getLogger(__name__)

DELIVERIES = Counter(
    "mailing_deliveries_total",
    "Mailing delivery attempts by result (sent, retry, failed, expired, deferred)",
    ["result"],
)
BATCH_SECONDS = Histogram(
    "mailing_dispatch_batch_seconds",
    "Duration of one dispatch batch (claim, send, record)",
    ["phase"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "mailing_dispatch_batch_size",
    "Messages claimed per dispatch batch",
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2000),
)
BREAKER_TRIPS = Counter("mailing_breaker_trips_total", "Times the sender circuit breaker opened")
RECLAIMED = Counter("mailing_reclaimed_total", "Stale `sending` deliveries put back to pending")
# Every series exists (at 0) from the start: a missing series is not a zero in PromQL.
for _result in ("sent", "retry", "failed", "expired", "deferred"):
    DELIVERIES.labels(_result)
for _phase in ("claim", "send", "record", "total"):
    BATCH_SECONDS.labels(_phase)

_PENDING, _SENDING = Delivery.Status.PENDING, Delivery.Status.SENDING
BREAKER_KEY = "mailing:breaker"

# --- Redis: lane leases, the breaker, progress throttling -----------------------------

_ACQUIRE = """
local v = redis.call('GET', KEYS[1])
if (not v) or v == 'scheduled' or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""
_HANDOVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end
  redis.call('SET', KEYS[1], 'scheduled', 'EX', ARGV[2])
  return 1
end
return 0
"""


def end_guard() -> timedelta:
    """No call starts this close to a message's deadline: the provider accepts a request
    when it answers, so a call started just before the end time could be delivered
    after it."""
    return timedelta(seconds=settings.MAILING_END_GUARD)


def lane_key(mailing_id: int, lane: int) -> str:
    return f"mailing:lane:{int(mailing_id)}:{int(lane)}"


def lease_ttl() -> int:
    # Longer than one batch (an HTTP timeout plus database time), short enough that
    # a killed worker's lane is taken over soon.
    return int(settings.SENDER_TIMEOUT * 2 + 5)


def _lease_acquire(key: str, token: str) -> bool:
    return bool(get_redis().eval(_ACQUIRE, 1, key, token, lease_ttl()))  # type: ignore[no-untyped-call]


def _lease_handover(key: str, token: str, ttl: int) -> None:
    """Release the lease (ttl 0) or mark the lane 'scheduled' for `ttl` seconds."""
    get_redis().eval(_HANDOVER, 1, key, token, str(max(int(ttl), 0)))  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Breaker:
    open_until: float
    trips: int


def breaker_state() -> Breaker:
    raw = get_redis().hgetall(BREAKER_KEY)
    return Breaker(
        open_until=float(raw.get(b"open_until", 0) or 0), trips=int(raw.get(b"trips", 0) or 0)
    )


def _breaker_trip(previous: Breaker, *, mailing_id: int, message_ids: list[int]) -> float:
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


def _breaker_close(*, mailing_id: int, message_ids: list[int]) -> None:
    get_redis().delete(BREAKER_KEY)
    log.info("mailing_breaker_closed", mailing_id=mailing_id, probe_message_ids=message_ids)


# --- enqueueing lanes -----------------------------------------------------------------


def mailing_queue(priority: int) -> str:
    """The RQ queue of a mailing's jobs: workers take `mailing_high` before `mailing`."""
    return QUEUE_MAILING_HIGH if priority >= settings.MAILING_HIGH_PRIORITY else QUEUE_MAILING


def _urgent_work_waiting(priority: int) -> bool:
    """True when a lower-priority lane should give its worker back right away."""
    if priority >= settings.MAILING_HIGH_PRIORITY:
        return False
    return bool(get_redis().llen(get_queue(QUEUE_MAILING_HIGH).key))


def lanes_enqueue_on_commit(mailing: Mailing) -> None:
    from mailing.jobs import mailing_dispatch

    for lane in range(settings.MAILING_LANES):
        enqueue_on_commit(mailing_dispatch, mailing.pk, lane, queue=mailing_queue(mailing.priority))


def _lane_enqueue(mailing_id: int, lane: int, at: datetime | None = None) -> None:
    from mailing.jobs import mailing_dispatch

    priority = Mailing.objects.filter(pk=mailing_id).values_list("priority", flat=True).first()
    queue = mailing_queue(priority if priority is not None else 0)
    enqueue_now(mailing_dispatch, mailing_id, lane, queue=queue, at=at)


# --- claim, send, record --------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: int
    phone: int
    text: str
    attempts: int
    deadline: datetime
    client_id: int | None
    tz: str


def _mailing_deliveries(mailing_id: int) -> Any:
    return Delivery.objects.filter(mailing_message__mailing_id=mailing_id)


def claim(
    *, mailing_id: int, token: str, size: int, now: datetime, promo: bool = False
) -> list[Row]:
    """Claim up to `size` due pending deliveries of the mailing for `token`.

    For a promotional mailing, a client who opted out since the mailing started is
    checked here, at send time: the message is failed ("opted out"), never sent.
    """
    with transaction.atomic():
        ids = list(
            _mailing_deliveries(mailing_id)
            .select_for_update(skip_locked=True, of=("self",))
            .filter(status=_PENDING, deadline__gt=now + end_guard())
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .values_list("pk", flat=True)[:size]
        )
        if not ids:
            return []
        if promo:
            opted_out = list(
                Delivery.objects.filter(
                    pk__in=ids, mailing_message__client__promo_opt_out=True
                ).values_list("pk", "mailing_message__client_id")
            )
            if opted_out:
                skipped = {pk for pk, _ in opted_out}
                Delivery.objects.filter(pk__in=skipped, status=_PENDING).update(
                    status=Delivery.Status.FAILED,
                    last_error="client opted out of promotions",
                    next_attempt_at=None,
                    updated_at=now,
                )
                DELIVERIES.labels("failed").inc(len(skipped))
                for pk, client_id in opted_out:
                    log.info(
                        "mailing_message_skipped",
                        mailing_id=mailing_id,
                        message_id=pk,
                        delivery_id=pk,
                        client_id=client_id,
                        reason="client opted out of promotions",
                    )
                ids = [i for i in ids if i not in skipped]
                if not ids:
                    return []
        Delivery.objects.filter(pk__in=ids, status=_PENDING).update(
            status=_SENDING,
            claim_token=token,
            claimed_at=now,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    return [
        Row(*values)  # type: ignore[arg-type]
        for values in Delivery.objects.filter(pk__in=ids, claim_token=token).values_list(
            "pk",
            "phone",
            "text",
            "attempts",
            "deadline",
            "mailing_message__client_id",
            "mailing_message__client__timezone",
        )
    ]


def _defer_outside_window(
    rows: list[Row], mailing: dict[str, Any], mailing_id: int, token: str, now: datetime
) -> list[Row]:
    """Give back (attempt refunded) the claimed rows whose client is outside its window."""
    start, end = mailing["window_start"], mailing["window_end"]
    if start is None or end is None:
        return rows
    keep: list[Row] = []
    later: dict[datetime, list[int]] = defaultdict(list)
    for row in rows:
        if in_window(now, row.tz or "UTC", start, end):
            keep.append(row)
        else:
            later[next_opening(now, row.tz or "UTC", start, end)].append(row.id)
            log.info(
                "mailing_message_deferred",
                mailing_id=mailing_id,
                message_id=row.id,
                delivery_id=row.id,
                client_id=row.client_id,
                reason="outside the client's window",
            )
    if later:
        with transaction.atomic():
            for opening, ids in later.items():
                Delivery.objects.filter(pk__in=ids, claim_token=token, status=_SENDING).update(
                    status=_PENDING,
                    claim_token="",
                    attempts=F("attempts") - 1,
                    next_attempt_at=opening,
                    updated_at=now,
                )
        DELIVERIES.labels("deferred").inc(sum(len(v) for v in later.values()))
    return keep


class _HttpxSender:
    """`core.sender.send_async` behind the same interface as `SenderPool`."""

    def __init__(self) -> None:
        self.client = async_client(concurrency=settings.MAILING_CONCURRENCY)
        self.semaphore = asyncio.Semaphore(settings.MAILING_CONCURRENCY)

    async def send(self, *, msg_id: int, phone: int, text: str) -> SendResult:
        async with self.semaphore:
            return await send_async(self.client, msg_id=msg_id, phone=phone, text=text)

    async def aclose(self) -> None:
        await self.client.aclose()


def _open_sender() -> SenderPool | _HttpxSender:
    if settings.MAILING_TRANSPORT == "httpx":
        return _HttpxSender()
    return SenderPool(
        url=settings.SENDER_URL,
        token=settings.SENDER_TOKEN,
        concurrency=settings.MAILING_CONCURRENCY,
        timeout=settings.SENDER_TIMEOUT,
    )


async def _send_all(sender: SenderPool | _HttpxSender, rows: Sequence[Row]) -> list[SendResult]:
    timeout = settings.SENDER_TIMEOUT

    async def one(row: Row) -> SendResult:
        remaining = (row.deadline - timezone.now()).total_seconds()
        if remaining <= settings.MAILING_END_GUARD:
            return SendResult("transient", None, 0, "end time reached before the call")
        call = sender.send(msg_id=row.id, phone=row.phone, text=row.text)
        if remaining > timeout + 1:
            return await call
        try:  # never let a call run past the mailing's end time
            return await asyncio.wait_for(call, timeout=remaining)
        except TimeoutError:
            return SendResult(
                "transient",
                None,
                int(remaining * 1000),
                "end time reached during the call",
                answer_lost=True,
            )

    return list(await asyncio.gather(*(one(row) for row in rows)))


@dataclass
class BatchOutcome:
    sent: int = 0
    retry: int = 0
    failed: int = 0
    expired: int = 0
    tripped: bool = False
    breaker_until: float = 0.0


def record(
    *,
    mailing_id: int,
    rows: Sequence[Row],
    results: Sequence[SendResult],
    token: str,
    breaker: Breaker,
) -> BatchOutcome:
    """Write every attempt and the new statuses in one short transaction."""
    now = timezone.now()
    outcome = BatchOutcome()
    transient = sum(1 for r in results if r.outcome == "transient")
    ratio = transient / len(results) if results else 0.0
    if ratio >= settings.MAILING_BREAKER_RATIO and (
        transient >= settings.MAILING_BREAKER_MIN_FAILURES or breaker.trips > 0
    ):
        outcome.tripped = True
        outcome.breaker_until = _breaker_trip(
            breaker, mailing_id=mailing_id, message_ids=[r.id for r in rows]
        )
    elif breaker.trips > 0 and results:
        _breaker_close(mailing_id=mailing_id, message_ids=[r.id for r in rows])
    resume_at = (
        datetime.fromtimestamp(outcome.breaker_until, tz=now.tzinfo) if outcome.tripped else None
    )

    sent: list[int] = []
    final: dict[str, list[tuple[int, str]]] = {"failed": [], "expired": []}
    retry: list[tuple[int, datetime, str]] = []
    refund: list[tuple[int, datetime, str]] = []
    new_status: dict[int, str] = {}
    for row, result in zip(rows, results, strict=True):
        # Retried until the message's deadline (the mailing's end), not a fixed count.
        decision = retry_decision(
            outcome_of(result), row.attempts, row.deadline, now, guard=end_guard()
        )
        error = chain_error(decision, result.error)
        if decision.status == Delivery.Status.SENT:
            sent.append(row.id)
        elif decision.status != _PENDING:
            final[decision.status].append((row.id, error))
        elif resume_at is not None and resume_at < row.deadline:
            # The sender is down: this attempt does not count against the message.
            refund.append((row.id, resume_at, error))
        else:
            assert decision.retry_at is not None
            retry.append((row.id, decision.retry_at, error))
        new_status[row.id] = decision.status

    attempts = [
        (row.id, row.attempts, r.outcome, r.status_code, r.duration_ms, r.error[:500])
        for row, r in zip(rows, results, strict=True)
    ]
    fenced = Delivery.objects.filter(claim_token=token, status=_SENDING)
    with transaction.atomic():
        # The rows this claim still owns (locked): a row reclaimed meanwhile is not
        # overwritten, and its log line says so instead of a status it did not get.
        applied = set(
            fenced.select_for_update(of=("self",))
            .filter(pk__in=[row.id for row in rows])
            .values_list("pk", flat=True)
        )
        delivery_attempts_insert(rows=attempts)
        if sent:
            fenced.filter(pk__in=sent).update(
                status=Delivery.Status.SENT,
                sent_at=now,
                claim_token="",
                last_error="",
                next_attempt_at=None,
                updated_at=now,
            )
        for status, items in final.items():
            if items:
                fenced.filter(pk__in=[i for i, _ in items]).update(
                    status=status,
                    claim_token="",
                    next_attempt_at=None,
                    last_error=_case_error(items),
                    updated_at=now,
                )
        for later, refunded in ((retry, False), (refund, True)):
            if later:
                fenced.filter(pk__in=[i for i, _, _ in later]).update(
                    status=_PENDING,
                    claim_token="",
                    attempts=F("attempts") - 1 if refunded else F("attempts"),
                    next_attempt_at=Case(
                        *[When(pk=i, then=Value(at)) for i, at, _ in later],
                        output_field=DateTimeField(),
                    ),
                    last_error=_case_error([(i, e) for i, _, e in later]),
                    updated_at=now,
                )
    outcome.sent = len(sent)
    outcome.retry = len(retry) + len(refund)
    outcome.failed = len(final["failed"])
    outcome.expired = len(final["expired"])
    for name, count in (
        ("sent", outcome.sent),
        ("retry", outcome.retry),
        ("failed", outcome.failed),
        ("expired", outcome.expired),
    ):
        if count:
            DELIVERIES.labels(name).inc(count)
    for row, result in zip(rows, results, strict=True):
        log.info(
            "mailing_message_attempt",
            mailing_id=mailing_id,
            message_id=row.id,
            delivery_id=row.id,
            client_id=row.client_id,
            attempt=row.attempts,
            outcome=result.outcome,
            status_code=result.status_code,
            duration_ms=result.duration_ms,
            new_status=new_status[row.id] if row.id in applied else "unchanged",
            applied=row.id in applied,
            error=result.error or None,
        )
    return outcome


def _case_error(items: Sequence[tuple[int, str]]) -> Any:
    errors = {e[:500] for _, e in items}
    if len(errors) == 1:
        return Value(errors.pop())
    return Case(
        *[When(pk=i, then=Value(e[:500])) for i, e in items],
        default=Value(""),
        output_field=CharField(),
    )


# --- progress and finishing -----------------------------------------------------------


def _maybe_progress(mailing_id: int, organization_id: int) -> None:
    interval_ms = int(settings.MAILING_PROGRESS_INTERVAL * 1000)
    if not get_redis().set(f"mailing:progress:{int(mailing_id)}", 1, nx=True, px=interval_ms):
        return
    from mailing.selectors import mailing_counts

    publish_on_commit(
        organization_id,
        "mailing_progress",
        {"id": mailing_id, "status": "running", "counts": mailing_counts(mailing_id=mailing_id)},
    )


def expire_remaining(*, mailing_id: int, reason: str = "end time passed") -> int:
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            _mailing_deliveries(mailing_id)
            .select_for_update(skip_locked=True, of=("self",))
            .filter(status=_PENDING)
            .values_list("pk", flat=True)
        )
        count: int = (
            Delivery.objects.filter(pk__in=ids, status=_PENDING).update(
                status=Delivery.Status.EXPIRED,
                last_error=reason,
                next_attempt_at=None,
                updated_at=now,
            )
            if ids
            else 0
        )
    if count:
        DELIVERIES.labels("expired").inc(count)
        log.info(
            "mailing_messages_expired",
            mailing_id=mailing_id,
            count=count,
            message_ids=ids,
            reason=reason,
        )
    return count


def mailing_finish_if_done(*, mailing_id: int) -> bool:
    """Mark a fully materialized mailing finished once nothing is pending or in flight."""
    from mailing.services import _publish_finished

    with transaction.atomic():
        mailing = Mailing.objects.filter(
            pk=mailing_id, status=Mailing.Status.RUNNING, materialized_at__isnull=False
        ).first()
        if mailing is None:
            return False
        if _mailing_deliveries(mailing_id).filter(status__in=(_PENDING, _SENDING)).exists():
            return False
        now = timezone.now()
        if not Mailing.objects.filter(pk=mailing_id, status=Mailing.Status.RUNNING).update(
            status=Mailing.Status.FINISHED, finished_at=now, updated_at=now
        ):
            return False
        mailing.status, mailing.finished_at = Mailing.Status.FINISHED, now
        log.info("mailing_finished", mailing_id=mailing_id)
        _publish_finished(mailing)
    return True


def _next_due(mailing_id: int) -> datetime | None:
    value: datetime | None = (
        _mailing_deliveries(mailing_id)
        .filter(status=_PENDING)
        .aggregate(at=Min("next_attempt_at"))["at"]
    )
    if (
        value is None
        and _mailing_deliveries(mailing_id)
        .filter(status=_PENDING, next_attempt_at__isnull=True)
        .exists()
    ):
        return timezone.now()
    return value


# --- the lane loop --------------------------------------------------------------------


@dataclass(frozen=True)
class Next:
    at: datetime | None = None  # run again at this time (now if `now`)
    now: bool = False
    stop: bool = False


class _LoopThread:
    """An event loop in its own thread: HTTP runs there while this thread does SQL.

    Only HTTP happens in the loop thread; every database call stays in the job's
    thread (Django connections are per thread).
    """

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
    breaker: Breaker
    claimed_at: float
    claim_ms: float


def _complete(batch: _InFlight, *, mailing_id: int, lane: int, token: str, org_id: int) -> None:
    """Wait for a batch's HTTP calls and record them."""
    results = batch.future.result()
    t2 = time.perf_counter()
    BATCH_SECONDS.labels("send").observe(t2 - batch.claimed_at)
    outcome = record(
        mailing_id=mailing_id, rows=batch.rows, results=results, token=token, breaker=batch.breaker
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
        claim_ms=round(batch.claim_ms, 1),
        send_wait_ms=round((t2 - batch.claimed_at) * 1000, 1),
        record_ms=round((t3 - t2) * 1000, 1),
    )
    _maybe_progress(mailing_id, org_id)


def _lane_loop(
    loop: _LoopThread,
    sender: SenderPool | _HttpxSender,
    mailing_id: int,
    lane: int,
    token: str,
) -> Next:
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
            mailing = (
                Mailing.objects.filter(pk=mailing_id)
                .values(
                    "status",
                    "end_at",
                    "window_start",
                    "window_end",
                    "organization_id",
                    "priority",
                    "promo",
                )
                .first()
            )
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
            breaker = breaker_state()
            if breaker.open_until > time.time():
                return Next(at=datetime.fromtimestamp(breaker.open_until, tz=now.tzinfo))
            size = settings.MAILING_PROBE_SIZE if breaker.trips else settings.MAILING_BATCH_SIZE
            if breaker.trips:
                drain()  # probe alone, not beside a batch sent before the outage
            t0 = time.perf_counter()
            rows = claim(
                mailing_id=mailing_id, token=token, size=size, now=now, promo=mailing["promo"]
            )
            claim_ms = (time.perf_counter() - t0) * 1000
            BATCH_SECONDS.labels("claim").observe(claim_ms / 1000)
            if rows:
                BATCH_SIZE.observe(len(rows))
                rows = _defer_outside_window(rows, dict(mailing), mailing_id, token, now)
            previous, inflight = inflight, None
            if rows:
                inflight = _InFlight(
                    rows=rows,
                    future=loop.submit(_send_all(sender, rows)),
                    breaker=breaker,
                    claimed_at=time.perf_counter(),
                    claim_ms=claim_ms,
                )
            if previous is not None:
                _complete(previous, mailing_id=mailing_id, lane=lane, token=token, org_id=org_id)
            elif inflight is None:
                due = _next_due(mailing_id)
                if due is None:
                    if mailing_finish_if_done(mailing_id=mailing_id):
                        return Next(stop=True)
                    # In flight elsewhere, or the audience is still being materialized.
                    return Next(at=now + timedelta(seconds=1))
                return Next(at=max(due, now + timedelta(milliseconds=200)))
            if not _lease_acquire(key, token):  # refresh; lost: another job owns the lane
                log.warning("mailing_lane_lost", mailing_id=mailing_id, lane=lane)
                return Next(stop=True)
            if time.monotonic() > slice_end:
                return Next(now=True)  # give the worker back to other queued jobs
            if _urgent_work_waiting(mailing["priority"]):
                # A high-priority mailing is queued: this lane goes back to the end of
                # its queue after this batch, so the worker takes the urgent one first.
                log.info("mailing_lane_yielded", mailing_id=mailing_id, lane=lane)
                return Next(now=True)
    finally:
        drain()


async def _async(factory: Any) -> Any:
    return factory()  # built inside the loop that will use it


def mailing_dispatch(*, mailing_id: int, lane: int = 0) -> None:
    """Job body: run one lane of a mailing for a time slice, then hand over."""
    key = lane_key(mailing_id, lane)
    token = new_claim_token()
    if not _lease_acquire(key, token):
        log.info("mailing_lane_busy", mailing_id=mailing_id, lane=lane)
        return
    nxt = Next(stop=True)
    try:
        loop = _LoopThread()
        try:
            sender = loop.submit(_async(_open_sender)).result()
            try:
                nxt = _lane_loop(loop, sender, mailing_id, lane, token)
            finally:
                loop.submit(sender.aclose()).result(10)
        finally:
            loop.close()
    finally:
        if nxt.stop:
            _lease_handover(key, token, 0)
        else:
            at = None if nxt.now else nxt.at
            wait = (at - timezone.now()).total_seconds() if at is not None else 0.0
            _lease_handover(key, token, int(max(wait, 0)) + 60)
            _lane_enqueue(mailing_id, lane, at=at)


# --- the cron sweeper -----------------------------------------------------------------


def mailing_sweep() -> dict[str, int]:
    """Make the database the source of truth for mailings (cron, every few seconds).

    Starts due mailings (whatever happened to their scheduled job), reclaims
    deliveries a killed worker left `sending`, resumes unfinished materialization,
    re-enqueues lanes that no live job holds, expires what passed its end time and
    finishes what is done.
    """
    from mailing.jobs import mailing_materialize

    now = timezone.now()
    report = {"started": 0, "reclaimed": 0, "lanes": 0, "finished": 0}
    ids: dict[str, list[int]] = {"started": [], "lanes": [], "finished": []}
    with transaction.atomic():
        due = list(
            Mailing.objects.select_for_update(skip_locked=True)
            .filter(status=Mailing.Status.SCHEDULED, start_at__lte=now)
            .order_by("-priority", "start_at")
            .values_list("pk", flat=True)[:100]
        )
        if due:
            Mailing.objects.filter(pk__in=due, status=Mailing.Status.SCHEDULED).update(
                status=Mailing.Status.RUNNING, started_at=now, updated_at=now
            )
            priorities = dict(Mailing.objects.filter(pk__in=due).values_list("pk", "priority"))
            for mailing_id in due:
                log.info("mailing_started", mailing_id=mailing_id, by="sweeper")
                enqueue_on_commit(
                    mailing_materialize, mailing_id, queue=mailing_queue(priorities[mailing_id])
                )
            report["started"] = len(due)
            ids["started"] = due
    reclaimed = delivery_reclaim_stale(
        source=Delivery.Source.MAILING,
        older_than=timedelta(seconds=settings.SENDER_TIMEOUT * 3),
    )
    RECLAIMED.inc(len(reclaimed))
    report["reclaimed"] = len(reclaimed)
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
    # A cancelled mailing whose in-flight batch was retried after the cancel (or whose
    # lane died) must not keep `pending` messages forever.
    cancelled = (
        MailingMessage.objects.filter(
            mailing__status=Mailing.Status.CANCELLED, delivery__status=_PENDING
        )
        .values_list("mailing_id", flat=True)
        .distinct()[:100]
    )
    for mailing_id in list(cancelled):
        expire_remaining(mailing_id=mailing_id, reason="mailing cancelled")
    redis = get_redis()
    running = (
        Mailing.objects.filter(status=Mailing.Status.RUNNING)
        .exclude(pk__in=due)
        .order_by("-priority", "start_at")
        .values("pk", "end_at", "materialized_at", "priority")[:200]
    )
    for mailing in running:
        mailing_id = mailing["pk"]
        if mailing["materialized_at"] is None:
            if redis.set(f"mailing:materialize:{mailing_id}", 1, nx=True, ex=60):
                enqueue_now(
                    mailing_materialize, mailing_id, queue=mailing_queue(mailing["priority"])
                )
            continue
        if mailing["end_at"] <= now + end_guard():
            expire_remaining(mailing_id=mailing_id)
        if mailing_finish_if_done(mailing_id=mailing_id):
            report["finished"] += 1
            ids["finished"].append(mailing_id)
            continue
        due_at = _next_due(mailing_id)
        # Not `now`: _next_due answers "now" for never-tried rows with a later clock.
        if due_at is None or due_at > timezone.now():
            continue
        for lane in range(settings.MAILING_LANES):
            if redis.set(lane_key(mailing_id, lane), "scheduled", nx=True, ex=lease_ttl() + 60):
                log.info("mailing_lane_resumed", mailing_id=mailing_id, lane=lane)
                _lane_enqueue(mailing_id, lane)
                report["lanes"] += 1
                ids["lanes"].append(mailing_id)
    if any(report.values()):
        log.info(
            "mailing_sweep",
            **report,
            started_mailing_ids=ids["started"],
            resumed_mailing_ids=sorted(set(ids["lanes"])),
            finished_mailing_ids=ids["finished"],
        )
    return report


def debug_enabled() -> bool:
    return _stdlog.isEnabledFor(logging.DEBUG)
