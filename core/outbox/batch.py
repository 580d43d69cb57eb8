"""The outbox's batch API: claim and record many Delivery rows at once.

The same protocol as the single-row `delivery_claim` / `delivery_record`, for owners
that send in batches (mailing dispatch):

1. `claim_many` locks up to `size` due `pending` rows of a queryset (`SELECT ... FOR
   UPDATE SKIP LOCKED` on PostgreSQL, so concurrent claimers take different rows),
   moves them to `sending` with one claim token, in one conditional UPDATE, and writes
   their `in_flight` attempt rows (one INSERT ... SELECT) in the same transaction;
2. the owner sends them, with no transaction open;
3. `record_many` writes every attempt's outcome on its row (one UPDATE ... FROM
   VALUES) and the new statuses (one UPDATE per outcome), each status UPDATE fenced by
   the claim token: a row reclaimed meanwhile (`delivery_reclaim_stale`) is not
   overwritten by a late worker, whose attempt row still gets its real outcome.

A worker killed between 1 and 3 leaves its rows `sending` with their attempts
`in_flight`: the owner's sweeper (`delivery_reclaim_stale`) puts them back and marks
those attempts `lost`, as for every channel. Rows the owner gives back unsent
(`release_many`: outside a client's window) lose their claim and their attempt row.

What follows each attempt is `retry_decision`, as for every owner. The owner may
*refund* the retries (the attempt row stays, the count goes back down): mailing does
so while its circuit breaker is open, so an outage does not use up its messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.db import transaction
from django.db.models import Case, CharField, DateTimeField, F, Q, QuerySet, Value, When

from core.models import Delivery, DeliveryAttempt, OutboxAttemptOutcome
from core.outbox import (
    ATTEMPT_IN_FLIGHT,
    chain_error,
    delivery_attempts_insert,
    outcome_of,
    retry_decision,
)
from core.outbox.bulk import delivery_attempts_finish, delivery_attempts_start
from core.sender import SendResult

_PENDING, _SENDING = Delivery.Status.PENDING, Delivery.Status.SENDING

CLAIM_FIELDS = ("pk", "phone", "text", "attempts", "deadline")


def claim_many(
    *,
    deliveries: QuerySet[Delivery],
    token: str,
    size: int,
    now: datetime,
    guard: timedelta = timedelta(0),
    screen: Callable[[list[int]], list[int]] | None = None,
    fields: Sequence[str] = CLAIM_FIELDS,
) -> list[tuple[Any, ...]]:
    """Claim up to `size` due pending rows of `deliveries` for `token`.

    A row is due when its deadline is more than `guard` away and its retry time has
    come. `screen`, called inside the claiming transaction with the locked ids, returns
    the ids to claim (the owner settles the others itself, e.g. a client who opted
    out). Returns `fields` of the claimed rows, with their incremented attempt count.
    """
    with transaction.atomic():
        ids = list(
            deliveries.select_for_update(skip_locked=True, of=("self",))
            .filter(status=_PENDING, deadline__gt=now + guard)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .values_list("pk", flat=True)[:size]
        )
        if ids and screen is not None:
            ids = screen(ids)
        if not ids:
            return []
        Delivery.objects.filter(pk__in=ids, status=_PENDING).update(
            status=_SENDING,
            claim_token=token,
            claimed_at=now,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
        # With the claim, so a worker killed during the calls leaves each try recorded
        # (the sweeper makes it `lost`), as the single-row claim does.
        delivery_attempts_start(ids=ids, token=token, error=ATTEMPT_IN_FLIGHT)
    return list(Delivery.objects.filter(pk__in=ids, claim_token=token).values_list(*fields))


def release_many(
    *, ids: Sequence[int], token: str, now: datetime, next_attempt_at: datetime
) -> int:
    """Give claimed rows back unsent, for `next_attempt_at`: the attempt is refunded
    (the count goes back down) and its `in_flight` row deleted, since no call was made.
    Only rows `token` still holds. Returns how many were given back."""
    with transaction.atomic():
        held = list(
            Delivery.objects.select_for_update(of=("self",))
            .filter(pk__in=ids, claim_token=token, status=_SENDING)
            .values_list("pk", flat=True)
        )
        if not held:
            return 0
        # A claimed row's only in-flight attempt is this claim's (a reclaim makes the
        # earlier ones `lost`, a record gives them their outcome).
        DeliveryAttempt.objects.filter(
            delivery_id__in=held, outcome=OutboxAttemptOutcome.IN_FLIGHT
        ).delete()
        Delivery.objects.filter(pk__in=held).update(
            status=_PENDING,
            claim_token="",
            attempts=F("attempts") - 1,
            next_attempt_at=next_attempt_at,
            updated_at=now,
        )
    return len(held)


class ClaimedRow(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def attempts(self) -> int: ...
    @property
    def deadline(self) -> datetime: ...


@dataclass
class BatchRecorded:
    sent: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)  # back to pending, refunded included
    failed: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    status: dict[int, str] = field(default_factory=dict)  # the decided status per id
    applied: set[int] = field(default_factory=set)  # ids this claim still owned


def record_many(
    *,
    rows: Sequence[ClaimedRow],
    results: Sequence[SendResult],
    token: str,
    now: datetime,
    guard: timedelta = timedelta(0),
    refund_until: datetime | None = None,
) -> BatchRecorded:
    """Record one attempt per row and move each row on, in one short transaction.

    With `refund_until`, a row to be retried is instead put back for that time with its
    attempt refunded (if that is before its deadline).
    """
    out = BatchRecorded()
    final: dict[str, list[tuple[int, str]]] = {"failed": [], "expired": []}
    later: list[tuple[int, datetime, str]] = []
    refund: list[tuple[int, datetime, str]] = []
    for row, result in zip(rows, results, strict=True):
        decision = retry_decision(outcome_of(result), row.attempts, row.deadline, now, guard=guard)
        error = chain_error(decision, result.error)
        if decision.status == Delivery.Status.SENT:
            out.sent.append(row.id)
        elif decision.status != _PENDING:
            final[decision.status].append((row.id, error))
        elif refund_until is not None and refund_until < row.deadline:
            refund.append((row.id, refund_until, error))
        else:
            assert decision.retry_at is not None
            later.append((row.id, decision.retry_at, error))
        out.status[row.id] = decision.status
    attempts = [
        (row.id, row.attempts, r.outcome, r.status_code, r.duration_ms, r.error[:500])
        for row, r in zip(rows, results, strict=True)
    ]
    fenced = Delivery.objects.filter(claim_token=token, status=_SENDING)
    with transaction.atomic():
        # The rows this claim still owns (locked), so the caller can tell which
        # outcomes were applied.
        out.applied = set(
            fenced.select_for_update(of=("self",))
            .filter(pk__in=[row.id for row in rows])
            .values_list("pk", flat=True)
        )
        # Rows claimed without an attempt row (before claims wrote them) get one now.
        delivery_attempts_insert(rows=delivery_attempts_finish(rows=attempts))
        if out.sent:
            fenced.filter(pk__in=out.sent).update(
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
        for back, refunded in ((later, False), (refund, True)):
            if back:
                fenced.filter(pk__in=[i for i, _, _ in back]).update(
                    status=_PENDING,
                    claim_token="",
                    attempts=F("attempts") - 1 if refunded else F("attempts"),
                    next_attempt_at=Case(
                        *[When(pk=i, then=Value(at)) for i, at, _ in back],
                        output_field=DateTimeField(),
                    ),
                    last_error=_case_error([(i, e) for i, _, e in back]),
                    updated_at=now,
                )
    out.retry = [i for i, _, _ in later] + [i for i, _, _ in refund]
    out.failed = [i for i, _ in final["failed"]]
    out.expired = [i for i, _ in final["expired"]]
    return out


def _case_error(items: Sequence[tuple[int, str]]) -> Any:
    errors = {e[:500] for _, e in items}
    if len(errors) == 1:
        return Value(errors.pop())
    return Case(
        *[When(pk=i, then=Value(e[:500])) for i, e in items],
        default=Value(""),
        output_field=CharField(),
    )
