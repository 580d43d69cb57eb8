"""Bulk writes of deliveries and their attempt rows (mailing materialize and dispatch).

Django's bulk_create spends most of its time compiling per-value SQL (about 25 µs a
value); these build one multi-row statement with plain parameters instead. Values are
adapted once per distinct datetime, which is what makes them fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from core.models import Delivery, DeliveryAttempt, OutboxAttemptOutcome


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


def delivery_attempts_start(*, ids: Sequence[int], token: str, error: str) -> None:
    """Write the `in_flight` attempt row of each delivery in `ids` claimed by `token`.

    One INSERT ... SELECT: the attempt number is the delivery's count as the claim just
    incremented it, read by the database itself (no round trip with the values). Call
    in the claiming transaction, after the claim's UPDATE.
    """
    if not ids:
        return
    attempts = connection.ops.quote_name(DeliveryAttempt._meta.db_table)
    deliveries = connection.ops.quote_name(Delivery._meta.db_table)
    stamp = _adapt_datetime(timezone.now(), {})
    with connection.cursor() as cursor:
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = ", ".join(["%s"] * len(part))
            params: list[Any] = [OutboxAttemptOutcome.IN_FLIGHT, error, stamp, *part, token]
            cursor.execute(
                f"INSERT INTO {attempts} "
                "(delivery_id, number, outcome, status_code, duration_ms, error, created_at) "
                f"SELECT id, attempts, %s, NULL, 0, %s, %s FROM {deliveries} "
                f"WHERE id IN ({marks}) AND claim_token = %s",
                params,
            )


def delivery_attempts_finish(
    *, rows: Sequence[tuple[int, int, str, int | None, int, str]], chunk: int = 500
) -> list[tuple[int, int, str, int | None, int, str]]:
    """Write each attempt's outcome (and the time) on its row written at the claim: rows
    of (delivery_id, number, outcome, status_code, duration_ms, error).

    One UPDATE ... FROM (VALUES ...) per chunk (PostgreSQL, and SQLite since 3.33). Only
    an attempt still without an outcome (`in_flight`, or `lost` if a sweeper reclaimed
    it meanwhile: the call did happen, and this is how it went) is written: a refunded
    attempt keeps its number, so an earlier row may carry the same one. Returns the
    rows that found no attempt row to update (claimed without one), for the caller to
    insert.
    """
    table = connection.ops.quote_name(DeliveryAttempt._meta.db_table)
    pending = (OutboxAttemptOutcome.IN_FLIGHT, OutboxAttemptOutcome.LOST)
    # A batch attempt's created_at is when its outcome was written, after the call (the
    # claim's time while it is in flight or lost), as when the record inserted the
    # rows: created_at - duration_ms bounds when the call started (the end-time test
    # in tests/mailing/test_dispatch_e2e.py relies on it).
    stamp: Any = _adapt_datetime(timezone.now(), {})
    missing: list[tuple[int, int, str, int | None, int, str]] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params: list[Any] = []
            for row in part:
                params += row
            values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(part))
            ids = [row[0] for row in part]
            # VALUES columns are column1..column6 on both databases; the casts type the
            # parameters (a NULL status code would otherwise be text on PostgreSQL). The
            # IN list keeps the attempt table behind its delivery_id index: PostgreSQL
            # otherwise hash-joins 500 values against a scan of the whole table.
            cursor.execute(
                f"UPDATE {table} SET outcome = v.column3, "
                "status_code = CAST(v.column4 AS integer), "
                "duration_ms = CAST(v.column5 AS integer), error = v.column6, "
                "created_at = %s "
                f"FROM (VALUES {values}) AS v "
                f"WHERE {table}.delivery_id IN ({', '.join(['%s'] * len(ids))}) "
                f"AND {table}.delivery_id = CAST(v.column1 AS bigint) "
                f"AND {table}.number = CAST(v.column2 AS integer) "
                f"AND {table}.outcome IN (%s, %s)",
                [stamp, *params, *ids, *pending],
            )
            if cursor.rowcount == len(part):
                continue
            # Rare (rows claimed before claims wrote attempt rows, or by hand in a
            # test): find which had no row.
            cursor.execute(
                f"SELECT delivery_id, number FROM {table} "
                f"WHERE delivery_id IN ({', '.join(['%s'] * len(ids))})",
                ids,
            )
            found = set(cursor.fetchall())
            missing += [row for row in part if (row[0], row[1]) not in found]
    return missing
