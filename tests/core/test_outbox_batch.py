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


# --- attempt rows: written with the claim, given their outcome by the record -----------


def _attempts(ids: list[int]) -> list[tuple[int, int, str]]:
    return list(
        DeliveryAttempt.objects.filter(delivery_id__in=ids)
        .order_by("delivery_id", "number")
        .values_list("delivery_id", "number", "outcome")
    )


def test_the_claim_writes_an_in_flight_attempt_and_the_record_completes_it(org: Any) -> None:
    ids = _deliveries(org, 2)
    rows = sorted(_claim(ids, "A"), key=lambda r: r.id)
    assert _attempts(ids) == [(ids[0], 1, "in_flight"), (ids[1], 1, "in_flight")]
    record_many(rows=rows, results=[OK, DOWN], token="A", now=timezone.now())
    # the same rows, with their outcomes: no second row for the same try
    assert _attempts(ids) == [(ids[0], 1, "ok"), (ids[1], 1, "transient")]
    failed = DeliveryAttempt.objects.get(delivery_id=ids[1])
    assert (failed.status_code, failed.duration_ms, failed.error) == (503, 5, "HTTP 503")
    # the retry's claim writes attempt 2, its record completes that one only
    Delivery.objects.filter(pk=ids[1]).update(next_attempt_at=None)
    (again,) = _claim([ids[1]], "B")
    record_many(rows=[again], results=[OK], token="B", now=timezone.now())
    assert _attempts([ids[1]]) == [(ids[1], 1, "transient"), (ids[1], 2, "ok")]


def test_a_worker_killed_after_its_claim_leaves_a_lost_attempt_and_one_send(org: Any) -> None:
    from core.outbox import delivery_reclaim_stale

    # given: a batch claimed by a worker that dies before recording (its calls may or
    # may not have reached the provider: the outcome is unknown)
    ids = _deliveries(org, 3)
    _claim(ids, "dead", now=timezone.now() - timedelta(minutes=5))
    # when: the sweeper reclaims the stale claim
    reclaimed = delivery_reclaim_stale(source=Delivery.Source.MAILING, older_than=timedelta(0))
    assert sorted(reclaimed) == ids
    # then: each try is recorded as lost, and the rows are pending again
    assert _attempts(ids) == [(i, 1, "lost") for i in ids]
    assert set(Delivery.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"pending"}
    # and the next worker sends each once more, under attempt 2, and each is sent once
    calls: list[int] = []
    rows = _claim(ids, "live")
    calls += [r.id for r in rows]
    record_many(rows=rows, results=[OK] * len(rows), token="live", now=timezone.now())
    assert sorted(calls) == ids
    assert _claim(ids, "later") == []  # nothing left to send
    assert _attempts(ids) == [(i, n, o) for i in ids for n, o in ((1, "lost"), (2, "ok"))]
    assert Delivery.objects.filter(pk__in=ids, status="sent").count() == 3


def test_a_late_record_after_the_reclaim_gives_the_lost_try_its_outcome(org: Any) -> None:
    from core.outbox import delivery_reclaim_stale

    ids = _deliveries(org, 1)
    rows = _claim(ids, "slow", now=timezone.now() - timedelta(minutes=5))
    delivery_reclaim_stale(source=Delivery.Source.MAILING, older_than=timedelta(0))
    (retry,) = _claim(ids, "next")
    # the slow worker's answer arrives now: its try was attempt 1, the new claim's is 2
    out = record_many(rows=rows, results=[OK], token="slow", now=timezone.now())
    assert out.applied == set()  # the row is the next claim's: not overwritten
    assert _attempts(ids) == [(ids[0], 1, "ok"), (ids[0], 2, "in_flight")]
    record_many(rows=[retry], results=[OK], token="next", now=timezone.now())
    assert _attempts(ids) == [(ids[0], 1, "ok"), (ids[0], 2, "ok")]


def test_a_refunded_try_keeps_its_row_and_the_next_claim_gets_its_own(org: Any) -> None:
    ids = _deliveries(org, 1)
    rows = _claim(ids, "A")
    until = timezone.now() - timedelta(seconds=1)  # due again at once
    record_many(rows=rows, results=[DOWN], token="A", now=timezone.now(), refund_until=until)
    (again,) = _claim(ids, "B")
    assert again.attempts == 1  # refunded: the same number again
    record_many(rows=[again], results=[OK], token="B", now=timezone.now())
    # both tries recorded, the refunded one's outcome untouched by the second record
    assert sorted(DeliveryAttempt.objects.values_list("outcome", flat=True)) == ["ok", "transient"]


def test_released_rows_lose_their_claim_and_their_attempt_row(org: Any) -> None:
    from core.outbox.batch import release_many

    ids = _deliveries(org, 2)
    _claim(ids, "A")
    opening = timezone.now() + timedelta(hours=3)
    assert release_many(ids=[ids[0]], token="B", now=timezone.now(), next_attempt_at=opening) == 0
    assert release_many(ids=[ids[0]], token="A", now=timezone.now(), next_attempt_at=opening) == 1
    row = Delivery.objects.get(pk=ids[0])
    assert (row.status, row.attempts, row.claim_token, row.next_attempt_at) == (
        "pending",
        0,
        "",
        opening,
    )
    assert _attempts(ids) == [(ids[1], 1, "in_flight")]


def test_a_claim_made_without_attempt_rows_is_still_recorded(org: Any) -> None:
    # rows claimed by code from before claims wrote attempt rows (a deploy mid-batch)
    ids = _deliveries(org, 2)
    rows = sorted(_claim(ids, "A"), key=lambda r: r.id)
    DeliveryAttempt.objects.filter(delivery_id=ids[1]).delete()
    record_many(rows=rows, results=[OK, BAD], token="A", now=timezone.now())
    assert _attempts(ids) == [(ids[0], 1, "ok"), (ids[1], 1, "permanent")]


def test_the_record_stamps_the_attempt_after_the_call(org: Any) -> None:
    # created_at - duration_ms bounds when the call started (as when the record inserted
    # the rows), so the record stamps the row written at the claim
    ids = _deliveries(org, 1)
    rows = _claim(ids, "A")
    DeliveryAttempt.objects.filter(delivery_id=ids[0]).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    before = timezone.now()
    record_many(rows=rows, results=[OK], token="A", now=timezone.now())
    assert DeliveryAttempt.objects.get(delivery_id=ids[0]).created_at >= before
