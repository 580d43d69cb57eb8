"""Bulk inserts of deliveries and their attempt rows (mailing materialize and dispatch).

Django's bulk_create spends most of its time compiling per-value SQL (about 25 µs a
value); these build one multi-row INSERT with plain parameters instead. Values are
adapted once per distinct datetime, which is what makes them fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from core.models import Delivery, DeliveryAttempt


def _adapt_datetime(value: datetime | None, cache: dict[datetime, object]) -> object:
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
