"""A mailing's batch: claim it, send it, record it, on the outbox's batch API.

`core.outbox.batch` does the generic part (claim with SKIP LOCKED and a claim token,
record with attempt rows and token-fenced updates, `retry_decision`); this module
adds what is the mailing's own: the end guard, the promotional opt-out checked at
send time, each client's sending window, the breaker's refund, counters and logs.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from core.logging import get_logger
from core.models import Delivery
from core.outbox.batch import CLAIM_FIELDS, claim_many, record_many, release_many
from core.sender import SendResult
from mailing.dispatch.breaker import Breaker, breaker_update
from mailing.dispatch.counters import DELIVERIES
from mailing.dispatch.email import EmailParts, with_email_parts
from mailing.models import Transport
from mailing.windows import in_window, next_opening

log = get_logger(__name__)

_PENDING = Delivery.Status.PENDING


def end_guard() -> timedelta:
    """No call starts this close to a message's deadline: the provider accepts a request
    when it answers, so a call started just before the end time could be delivered
    after it."""
    return timedelta(seconds=settings.MAILING_END_GUARD)


def mailing_deliveries(mailing_id: int) -> QuerySet[Delivery]:
    return Delivery.objects.filter(mailing_message__mailing_id=mailing_id)


@dataclass(frozen=True)
class Row:
    id: int
    phone: int
    text: str
    attempts: int
    deadline: datetime
    client_id: int | None
    tz: str
    transport: str = Transport.SMS
    email: EmailParts | None = None  # an email row's address, subject, HTML part


def claim(
    *, mailing_id: int, token: str, size: int, now: datetime, promo: bool = False
) -> list[Row]:
    """Claim up to `size` due pending deliveries of the mailing for `token`.

    For a promotional mailing, a client who opted out since the mailing started is
    checked here, at send time: the message is failed ("opted out"), never sent.
    """

    def opted_out(ids: list[int]) -> list[int]:
        skipped = dict(
            Delivery.objects.filter(pk__in=ids)
            .filter(  # each transport's own opt-out
                Q(
                    mailing_message__transport=Transport.SMS,
                    mailing_message__client__promo_opt_out=True,
                )
                | Q(
                    mailing_message__transport=Transport.EMAIL,
                    mailing_message__client__email_promo_opt_out=True,
                )
            )
            .values_list("pk", "mailing_message__client_id")
        )
        if not skipped:
            return ids
        Delivery.objects.filter(pk__in=skipped, status=_PENDING).update(
            status=Delivery.Status.FAILED,
            last_error="client opted out of promotions",
            next_attempt_at=None,
            updated_at=now,
        )
        DELIVERIES.labels("failed").inc(len(skipped))
        for pk, client_id in skipped.items():
            log.info(
                "mailing_message_skipped",
                mailing_id=mailing_id,
                message_id=pk,
                delivery_id=pk,
                client_id=client_id,
                reason="client opted out of promotions",
            )
        return [i for i in ids if i not in skipped]

    values = claim_many(
        deliveries=mailing_deliveries(mailing_id),
        token=token,
        size=size,
        now=now,
        guard=end_guard(),
        screen=opted_out if promo else None,
        fields=(
            *CLAIM_FIELDS,
            "mailing_message__client_id",
            "mailing_message__client__timezone",
            "mailing_message__transport",
        ),
    )
    return with_email_parts([Row(*v) for v in values])


def defer_outside_window(
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
                release_many(ids=ids, token=token, now=now, next_attempt_at=opening)
        DELIVERIES.labels("deferred").inc(sum(len(v) for v in later.values()))
    return keep


class Sender(Protocol):
    async def send(self, *, msg_id: int, phone: int, text: str) -> SendResult: ...
    async def send_email(self, row: Row) -> SendResult: ...


async def send_all(sender: Sender, rows: Sequence[Row]) -> list[SendResult]:
    """Send a batch concurrently (the sender bounds it); no call runs past a deadline."""
    timeout = settings.SENDER_TIMEOUT

    async def one(row: Row) -> SendResult:
        remaining = (row.deadline - timezone.now()).total_seconds()
        if remaining <= settings.MAILING_END_GUARD:
            return SendResult("transient", None, 0, "end time reached before the call")
        if row.transport == Transport.EMAIL:
            call = sender.send_email(row)
        else:
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
    until = breaker_update(
        breaker, results, mailing_id=mailing_id, message_ids=[r.id for r in rows]
    )
    if until is not None:
        outcome.tripped, outcome.breaker_until = True, until
    recorded = record_many(
        rows=rows,
        results=results,
        token=token,
        now=now,
        # Retried until the message's deadline (the mailing's end), not a fixed count.
        guard=end_guard(),
        # The sender is down: this attempt does not count against the message.
        refund_until=datetime.fromtimestamp(until, tz=now.tzinfo) if until is not None else None,
    )
    outcome.sent = len(recorded.sent)
    outcome.retry = len(recorded.retry)
    outcome.failed = len(recorded.failed)
    outcome.expired = len(recorded.expired)
    for name, count in (
        ("sent", outcome.sent),
        ("retry", outcome.retry),
        ("failed", outcome.failed),
        ("expired", outcome.expired),
    ):
        if count:
            DELIVERIES.labels(name).inc(count)
    for row, result in zip(rows, results, strict=True):
        applied = row.id in recorded.applied
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
            # A row reclaimed meanwhile was not overwritten: its line says so.
            new_status=recorded.status[row.id] if applied else "unchanged",
            applied=applied,
            error=result.error or None,
        )
    return outcome
