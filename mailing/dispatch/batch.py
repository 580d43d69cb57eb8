"""A mailing's batch: claim it, send it, record it, on the outbox's batch API.

`core.outbox.batch` does the generic part (claim with SKIP LOCKED and a claim token,
record with attempt rows and token-fenced updates, `retry_decision`); this module
adds what is the mailing's own: the end guard, the checks made again at send time (a
promotional opt-out, an email address that bounced since the message was created),
each client's sending window, the per-transport breakers' refund, counters and logs.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
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
from core.sender import SendResult, no_phone_result
from mailing.dispatch.breaker import CLOSED, Breaker, breaker_update
from mailing.dispatch.counters import DELIVERIES
from mailing.dispatch.email import EmailParts, with_email_parts
from mailing.models import MailingSkip, Transport
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
    phone: int | None  # None for a message of another transport (core.Delivery.phone)
    text: str
    attempts: int
    deadline: datetime
    client_id: int | None
    tz: str
    transport: str = Transport.SMS
    email: EmailParts | None = None  # an email row's address, subject, HTML part


UNDELIVERABLE_ERROR = "address undeliverable (bounced after the message was created)"
OPTED_OUT_ERROR = "client opted out of promotions"


def _screen(ids: list[int], *, mailing_id: int, promo: bool, now: datetime) -> list[int]:
    """The claimable ids of `ids` (locked, inside the claim's transaction); the others end
    `failed` without a call, each with its reason, and are counted.

    Checked at send time, not only when the messages were created: an email address that
    bounced (`email_undeliverable`) since then, and, for a promotional mailing, each
    transport's opt-out. A bounced message's client also gets a `MailingSkip`
    (`undeliverable`), so `/stats/`'s `skipped` counts it like a client skipped at
    creation."""
    undeliverable = Q(
        mailing_message__transport=Transport.EMAIL,
        mailing_message__client__email_undeliverable=True,
    )
    opted_out = Q(
        mailing_message__transport=Transport.SMS, mailing_message__client__promo_opt_out=True
    ) | Q(
        mailing_message__transport=Transport.EMAIL,
        mailing_message__client__email_promo_opt_out=True,
    )
    screened = Delivery.objects.filter(pk__in=ids).filter(
        (undeliverable | opted_out) if promo else undeliverable
    )
    found = list(
        screened.values_list(
            "pk",
            "mailing_message__client_id",
            "mailing_message__transport",
            "mailing_message__client__email_undeliverable",
        )
    )
    if not found:
        return ids
    by_reason: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
    for pk, client_id, transport, bounced in found:
        bounced_email = transport == Transport.EMAIL and bounced
        by_reason[UNDELIVERABLE_ERROR if bounced_email else OPTED_OUT_ERROR].append((pk, client_id))
    for reason, items in by_reason.items():
        Delivery.objects.filter(pk__in=[pk for pk, _ in items], status=_PENDING).update(
            status=Delivery.Status.FAILED,
            last_error=reason,
            next_attempt_at=None,
            updated_at=now,
        )
        DELIVERIES.labels("failed").inc(len(items))
        for pk, client in items:
            log.info(
                "mailing_message_skipped",
                mailing_id=mailing_id,
                message_id=pk,
                delivery_id=pk,
                client_id=client,
                reason=reason,
            )
    bounced_clients = [c for _, c in by_reason.get(UNDELIVERABLE_ERROR, []) if c is not None]
    if bounced_clients:
        MailingSkip.objects.bulk_create(
            [
                MailingSkip(
                    mailing_id=mailing_id, client_id=c, reason=MailingSkip.Reason.UNDELIVERABLE
                )
                for c in bounced_clients
            ],
            ignore_conflicts=True,
        )
    skipped = {pk for pk, *_ in found}
    return [i for i in ids if i not in skipped]


def claim(
    *,
    mailing_id: int,
    token: str,
    size: int,
    now: datetime,
    promo: bool = False,
    transports: Collection[str] | None = None,
) -> list[Row]:
    """Claim up to `size` due pending deliveries of the mailing for `token`, only of
    `transports` if given (those whose breaker is closed).

    Checked here, at send time (`_screen`): an email address that bounced since the
    message was created, and, for a promotional mailing, a client who opted out since
    it started. Such a message is failed, never sent.
    """
    deliveries = mailing_deliveries(mailing_id)
    if transports is not None:
        deliveries = deliveries.filter(mailing_message__transport__in=list(transports))
    values = claim_many(
        deliveries=deliveries,
        token=token,
        size=size,
        now=now,
        guard=end_guard(),
        screen=lambda ids: _screen(ids, mailing_id=mailing_id, promo=promo, now=now),
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
        elif row.phone is None:  # never an SMS without a phone: failed, no call
            return no_phone_result()
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
    breakers: Mapping[str, Breaker],
) -> BatchOutcome:
    """Write every attempt and the new statuses; `breakers` is each transport's breaker as
    it was when the batch was claimed.

    Each transport's results move only its own breaker, and only the messages of a
    transport whose breaker this batch tripped are refunded: one short transaction per
    transport in the batch (a batch is usually of one transport)."""
    now = timezone.now()
    outcome = BatchOutcome()
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        groups[row.transport].append(i)
    for transport, indexes in groups.items():
        part_rows = [rows[i] for i in indexes]
        part_results = [results[i] for i in indexes]
        until = breaker_update(
            breakers.get(transport, CLOSED),
            part_results,
            transport=transport,
            mailing_id=mailing_id,
            message_ids=[r.id for r in part_rows],
        )
        if until is not None:
            outcome.tripped = True
            outcome.breaker_until = max(outcome.breaker_until, until)
        _record_part(
            outcome,
            mailing_id=mailing_id,
            rows=part_rows,
            results=part_results,
            token=token,
            now=now,
            until=until,
        )
    return outcome


def _record_part(
    outcome: BatchOutcome,
    *,
    mailing_id: int,
    rows: Sequence[Row],
    results: Sequence[SendResult],
    token: str,
    now: datetime,
    until: float | None,
) -> None:
    recorded = record_many(
        rows=rows,
        results=results,
        token=token,
        now=now,
        # Retried until the message's deadline (the mailing's end), not a fixed count.
        guard=end_guard(),
        # This transport is down: this attempt does not count against the message.
        refund_until=datetime.fromtimestamp(until, tz=now.tzinfo) if until is not None else None,
    )
    counts = {
        "sent": len(recorded.sent),
        "retry": len(recorded.retry),
        "failed": len(recorded.failed),
        "expired": len(recorded.expired),
    }
    outcome.sent += counts["sent"]
    outcome.retry += counts["retry"]
    outcome.failed += counts["failed"]
    outcome.expired += counts["expired"]
    for name, count in counts.items():
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
            transport=row.transport,
            attempt=row.attempts,
            outcome=result.outcome,
            status_code=result.status_code,
            duration_ms=result.duration_ms,
            # A row reclaimed meanwhile was not overwritten: its line says so.
            new_status=recorded.status[row.id] if applied else "unchanged",
            applied=applied,
            error=result.error or None,
        )
