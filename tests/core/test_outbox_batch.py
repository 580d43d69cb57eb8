"""core.outbox.batch: claim_many / record_many over plain Delivery rows (no mailing)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from core.models import Delivery, DeliveryAttempt
from core.outbox.batch import claim_many, record_many
from core.sender import SendResult

pytestmark = pytest.mark.django_db

OK = SendResult("ok", 200, 5)
DOWN = SendResult("transient", 503, 5, "HTTP 503")
BAD = SendResult("permanent", 400, 5, "HTTP 400: no")


@dataclass(frozen=True)
class Row:
    id: int
    attempts: int
    deadline: datetime


def _deliveries(org: Any, n: int, *, deadline: datetime | None = None) -> list[int]:
    deadline = deadline or timezone.now() + timedelta(hours=1)
    return [
        Delivery.objects.create(
            organization=org,
            source=Delivery.Source.MAILING,
            phone=79_000_000_000 + i,
            text="hi",
            deadline=deadline,
        ).pk
        for i in range(n)
    ]


def _claim(ids: list[int], token: str, **kwargs: Any) -> list[Row]:
    now = kwargs.pop("now", timezone.now())
    values = claim_many(
        deliveries=Delivery.objects.filter(pk__in=ids),
        token=token,
        now=now,
        fields=("pk", "attempts", "deadline"),
        **{"size": 10, **kwargs},
    )
    return [Row(*v) for v in values]


def test_a_row_is_claimed_by_one_token_only(org: Any) -> None:
    ids = _deliveries(org, 3)
    first = _claim(ids, "A", size=2)
    second = _claim(ids, "B")
    assert len(first) == 2 and len(second) == 1
    assert {r.id for r in first} | {r.id for r in second} == set(ids)
    assert all(r.attempts == 1 for r in first + second)
    assert _claim(ids, "C") == []


def test_the_guard_and_the_retry_time_keep_rows_back(org: Any) -> None:
    now = timezone.now()
    (closing,) = _deliveries(org, 1, deadline=now + timedelta(seconds=1))
    (later,) = _deliveries(org, 1)
    Delivery.objects.filter(pk=later).update(next_attempt_at=now + timedelta(seconds=30))
    assert _claim([closing, later], "A", now=now, guard=timedelta(seconds=2)) == []


def test_screen_decides_inside_the_claim(org: Any) -> None:
    ids = _deliveries(org, 3)
    rows = _claim(ids, "A", screen=lambda locked: [i for i in locked if i != ids[1]])
    assert sorted(r.id for r in rows) == [ids[0], ids[2]]
    assert Delivery.objects.get(pk=ids[1]).status == "pending"


def test_record_many_moves_each_row_and_writes_every_attempt(org: Any) -> None:
    ids = _deliveries(org, 3)
    rows = sorted(_claim(ids, "A"), key=lambda r: r.id)
    now = timezone.now()
    out = record_many(rows=rows, results=[OK, DOWN, BAD], token="A", now=now)
    assert (out.sent, out.retry, out.failed, out.applied) == (
        [ids[0]],
        [ids[1]],
        [ids[2]],
        set(ids),
    )
    sent, retry, failed = (Delivery.objects.get(pk=i) for i in ids)
    assert (sent.status, sent.sent_at, sent.claim_token) == ("sent", now, "")
    assert retry.status == "pending" and retry.attempts == 1
    assert retry.next_attempt_at is not None and retry.next_attempt_at > now
    assert retry.last_error == "HTTP 503"
    assert failed.status == "failed" and failed.last_error.startswith("HTTP 400")
    assert DeliveryAttempt.objects.filter(delivery_id__in=ids).count() == 3


def test_a_reclaimed_row_is_not_overwritten(org: Any) -> None:
    ids = _deliveries(org, 2)
    rows = sorted(_claim(ids, "A"), key=lambda r: r.id)
    Delivery.objects.filter(pk=ids[1]).update(status="pending", claim_token="")  # reclaimed
    out = record_many(rows=rows, results=[OK, OK], token="A", now=timezone.now())
    assert out.applied == {ids[0]}
    assert Delivery.objects.get(pk=ids[1]).status == "pending"
    # the attempt happened all the same: it is recorded
    assert DeliveryAttempt.objects.filter(delivery_id=ids[1]).count() == 1


def test_a_refunded_retry_waits_and_keeps_its_count(org: Any) -> None:
    ids = _deliveries(org, 1)
    rows = _claim(ids, "A")
    until = timezone.now() + timedelta(seconds=40)
    out = record_many(rows=rows, results=[DOWN], token="A", now=timezone.now(), refund_until=until)
    assert out.retry == ids
    row = Delivery.objects.get(pk=ids[0])
    assert (row.status, row.next_attempt_at, row.attempts) == ("pending", until, 0)
