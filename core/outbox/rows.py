"""Delivery rows: claim, record an attempt, reclaim the abandoned (see `core.outbox`)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.logging import get_logger
from core.models import Delivery, DeliveryAttempt
from core.outbox.decision import LOST_ANSWER_FINAL, chain_error, outcome_of, retry_decision
from core.sender import SendResult

log = get_logger(__name__)


def new_claim_token() -> str:
    return secrets.token_hex(8)


def delivery_claim(*, delivery_id: int, token: str, now: datetime | None = None) -> Delivery | None:
    now = now or timezone.now()
    expired = Delivery.objects.filter(
        pk=delivery_id, status=Delivery.Status.PENDING, deadline__lte=now
    ).update(status=Delivery.Status.EXPIRED, last_error="deadline passed", updated_at=now)
    if expired:
        log.info("delivery_expired", delivery_id=delivery_id)
        return None
    claimed = (
        Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(
            status=Delivery.Status.SENDING,
            claim_token=token,
            claimed_at=now,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    )
    if not claimed:
        return None
    return Delivery.objects.get(pk=delivery_id)


@dataclass(frozen=True)
class Recorded:
    status: str  # the delivery's status after this attempt
    retry_at: datetime | None  # set when the delivery goes back to pending
    applied: bool  # False when the claim was lost (reclaimed meanwhile)


def delivery_record(*, delivery: Delivery, token: str, result: SendResult) -> Recorded:
    """Record one attempt and move the delivery on. Call inside a transaction."""
    now = timezone.now()
    decision = retry_decision(outcome_of(result), delivery.attempts, delivery.deadline, now)
    status, retry_at = decision.status, decision.retry_at
    updated = Delivery.objects.filter(
        pk=delivery.pk, status=Delivery.Status.SENDING, claim_token=token
    ).update(
        status=status,
        next_attempt_at=retry_at,
        last_error=chain_error(decision, result.error),
        sent_at=now if status == Delivery.Status.SENT else None,
        claim_token="",
        updated_at=now,
    )
    DeliveryAttempt.objects.create(
        delivery_id=delivery.pk,
        number=delivery.attempts,
        outcome=result.outcome,
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        error=result.error[:500],
    )
    log.info(
        "delivery_attempt",
        delivery_id=delivery.pk,
        source=delivery.source,
        attempt=delivery.attempts,
        outcome=result.outcome,
        answer_lost=result.answer_lost or None,
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        new_status=status if updated else "unchanged",
        error=result.error or None,
    )
    return Recorded(status=status, retry_at=retry_at, applied=bool(updated))


@transaction.atomic
def delivery_reclaim_stale(*, source: str, older_than: timedelta | None = None) -> list[int]:
    """Put deliveries abandoned in `sending` back to `pending`. Returns their ids.

    A worker that died during the call lost its answer: with
    `SENDER_RETRY_ON_LOST_ANSWER` false they are failed instead (never called again),
    and their ids are returned all the same, so the owner brings its own state along.
    """
    limit = timezone.now() - (older_than or timedelta(seconds=settings.SENDER_TIMEOUT * 3))
    stale = list(
        Delivery.objects.select_for_update(skip_locked=True)
        .filter(source=source, status=Delivery.Status.SENDING, claimed_at__lt=limit)
        .values_list("pk", flat=True)[:1000]
    )
    if stale and not settings.SENDER_RETRY_ON_LOST_ANSWER:
        Delivery.objects.filter(pk__in=stale, status=Delivery.Status.SENDING).update(
            status=Delivery.Status.FAILED,
            claim_token="",
            next_attempt_at=None,
            last_error=f"{LOST_ANSWER_FINAL}: the worker stopped during the call",
            updated_at=timezone.now(),
        )
        log.warning("deliveries_abandoned", source=source, count=len(stale), delivery_ids=stale)
    elif stale:
        Delivery.objects.filter(pk__in=stale, status=Delivery.Status.SENDING).update(
            status=Delivery.Status.PENDING, claim_token="", next_attempt_at=None
        )
        # Every id (at most 1000), so `grep delivery_id` / message id finds its reclaim.
        log.warning("deliveries_reclaimed", source=source, count=len(stale), delivery_ids=stale)
    return stale


def deliveries_overdue(*, source: str, grace: timedelta | None = None) -> list[int]:
    """Pending deliveries whose retry is long overdue (e.g. a Redis restart lost the job):
    by more than `grace`, SWEEP_GRACE seconds unless given."""
    if grace is None:
        grace = timedelta(seconds=settings.SWEEP_GRACE)
    limit = timezone.now() - grace
    return list(
        Delivery.objects.filter(source=source, status=Delivery.Status.PENDING)
        .filter(
            Q(next_attempt_at__lt=limit) | Q(next_attempt_at__isnull=True, created_at__lt=limit)
        )
        .values_list("pk", flat=True)[:1000]
    )


# --- bulk helpers (mailing dispatch) ----------------------------------------------------
# Django's bulk_create spends most of its time compiling per-value SQL (about 25 µs a
# value); these build one multi-row INSERT with plain parameters instead. Values are
# adapted once per distinct datetime, which is what makes them fast.


def _adapt_datetime(value: datetime | None, cache: dict[datetime, object]) -> object:
    from django.db import connection

    if value is None:
        return None
    if value not in cache:
        cache[value] = connection.ops.adapt_datetimefield_value(value)
    return cache[value]


def deliveries_insert(
    *,
    organization_id: int,
    source: str,
    rows: Sequence[tuple[int, str, str, datetime | None, str]],
    deadline: datetime | None,
    chunk: int = 500,
) -> list[tuple[int, int]]:
    """Insert deliveries: rows of (phone, text, status, next_attempt_at, last_error).

    Returns (id, phone) pairs. Phones must be unique within one call (they are how the
    caller matches ids to its rows: RETURNING order is not guaranteed).
    """
    from django.db import connection

    now = timezone.now()
    cache: dict[datetime, object] = {}
    table = connection.ops.quote_name(Delivery._meta.db_table)
    columns = (
        "organization_id, source, phone, text, status, attempts, next_attempt_at, deadline, "
        "claim_token, claimed_at, last_error, sent_at, created_at, updated_at"
    )
    stamp = _adapt_datetime(now, cache)
    due = _adapt_datetime(deadline, cache)
    out: list[tuple[int, int]] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params: list[Any] = []
            for phone, text, status, next_at, last_error in part:
                params += [
                    organization_id,
                    source,
                    phone,
                    text,
                    status,
                    0,
                    _adapt_datetime(next_at, cache),
                    due,
                    "",
                    None,
                    last_error,
                    None,
                    stamp,
                    stamp,
                ]
            values = ", ".join(["(" + ", ".join(["%s"] * 14) + ")"] * len(part))
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {values} RETURNING id, phone", params
            )
            out += [(int(i), int(p)) for i, p in cursor.fetchall()]
    return out


def delivery_attempts_insert(
    *, rows: Sequence[tuple[int, int, str, int | None, int, str]], chunk: int = 500
) -> None:
    """Insert attempt rows: (delivery_id, number, outcome, status_code, duration_ms, error)."""
    from django.db import connection

    if not rows:
        return
    cache: dict[datetime, object] = {}
    stamp = _adapt_datetime(timezone.now(), cache)
    table = connection.ops.quote_name(DeliveryAttempt._meta.db_table)
    columns = "delivery_id, number, outcome, status_code, duration_ms, error, created_at"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params: list[Any] = []
            for row in part:
                params += [*row, stamp]
            values = ", ".join(["(" + ", ".join(["%s"] * 7) + ")"] * len(part))
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES {values}", params)
