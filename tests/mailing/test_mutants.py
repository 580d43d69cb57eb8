"""Mailing dispatch at the database level: claim and record of a batch.

A slip in `mailing.dispatch.claim` / `record` is a double send (a row claimed twice, or
claimed while `sending`/`sent`), a loss (a retry recorded as sent or failed, a stale
worker overwriting the new claimant's outcome) or a send after the end time. Each test
pins one such condition, found by planting bugs with contrib/mutation.py (see
docs/testing.md). The sender is not called: results are built by hand, so a batch's
outcome is exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from core.models import Delivery, DeliveryAttempt
from core.sender import SendResult
from mailing.dispatch import BREAKER_KEYS, Breaker, breaker_key, breaker_state, claim, record

pytestmark = pytest.mark.django_db

OK = SendResult("ok", 200, 5)
TRANSIENT = SendResult("transient", 503, 5, "503 Service Unavailable")
PERMANENT = SendResult("permanent", 400, 5, "400 Bad Request")
CLOSED = Breaker(open_until=0.0, trips=0)
ALL_CLOSED = {"sms": CLOSED, "email": CLOSED}


@pytest.fixture(autouse=True)
def _closed_breaker(redis_client: Any) -> Iterator[None]:
    redis_client.delete(*BREAKER_KEYS)
    yield
    redis_client.delete(*BREAKER_KEYS)


def _mailing(org: Any, make_client: Any, n: int, *, minutes: float = 60) -> tuple[int, list[int]]:
    """A running mailing to every client, after adding `n`: its id, its deliveries' ids."""
    from mailing.services import mailing_create, mailing_start

    for _ in range(n):
        make_client(org)
    now = timezone.now()
    mailing = mailing_create(
        organization=org, start_at=now, end_at=now + timedelta(minutes=minutes), text="Hi"
    )
    mailing_start(mailing_id=mailing.pk)
    ids = list(
        Delivery.objects.filter(mailing_message__mailing=mailing)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    assert ids
    return mailing.pk, ids


def _status(pk: int) -> tuple[str, str, int]:
    row = Delivery.objects.get(pk=pk)
    return row.status, row.claim_token, row.attempts


def test_claim_takes_only_due_pending_rows_before_the_end_guard(org: Any, make_client: Any) -> None:
    mailing_id, (due, sent, sending, later, ending, ended) = _mailing(org, make_client, 6)
    now = timezone.now()
    Delivery.objects.filter(pk=sent).update(status="sent")
    Delivery.objects.filter(pk=sending).update(status="sending", claim_token="other")
    Delivery.objects.filter(pk=later).update(next_attempt_at=now + timedelta(seconds=30))
    # inside the end guard (MAILING_END_GUARD, 1 s): a call now could land after the end
    Delivery.objects.filter(pk=ending).update(deadline=now + timedelta(milliseconds=500))
    Delivery.objects.filter(pk=ended).update(deadline=now - timedelta(seconds=1))

    rows = claim(mailing_id=mailing_id, token="A", size=10, now=now)

    assert [r.id for r in rows] == [due]
    assert rows[0].attempts == 1
    row = Delivery.objects.get(pk=due)
    assert (row.status, row.claim_token, row.attempts, row.claimed_at) == ("sending", "A", 1, now)
    assert row.updated_at == now  # what the API shows as the last change
    # nobody else touched
    assert _status(sending) == ("sending", "other", 0)
    assert _status(sent)[0] == "sent"
    for pk in (later, ending, ended):
        assert _status(pk) == ("pending", "", 0)


def test_rows_already_sent_or_sending_do_not_fill_the_batch(org: Any, make_client: Any) -> None:
    # the first rows of the mailing are done or in flight; a batch of 2 must still
    # reach the 2 pending ones behind them (else the lane sees nothing due and stalls)
    mailing_id, (sent, sending, a, b) = _mailing(org, make_client, 4)
    Delivery.objects.filter(pk=sent).update(status="sent")
    Delivery.objects.filter(pk=sending).update(status="sending", claim_token="other")
    rows = claim(mailing_id=mailing_id, token="A", size=2, now=timezone.now())
    assert sorted(r.id for r in rows) == [a, b]


def test_a_claimed_row_is_not_claimed_again(org: Any, make_client: Any) -> None:
    mailing_id, ids = _mailing(org, make_client, 3)
    now = timezone.now()
    first = claim(mailing_id=mailing_id, token="A", size=2, now=now)
    second = claim(mailing_id=mailing_id, token="B", size=10, now=now)
    assert len(first) == 2
    assert {r.id for r in first} | {r.id for r in second} == set(ids)
    assert {r.id for r in first} & {r.id for r in second} == set()
    assert claim(mailing_id=mailing_id, token="C", size=10, now=now) == []


def test_claim_is_per_mailing(org: Any, make_client: Any) -> None:
    mine, _ = _mailing(org, make_client, 1)
    _, other_ids = _mailing(org, make_client, 0)  # the same client, another mailing
    rows = claim(mailing_id=mine, token="A", size=10, now=timezone.now())
    assert rows and not {r.id for r in rows} & set(other_ids)
    assert {_status(pk)[0] for pk in other_ids} == {"pending"}


def test_record_gives_each_row_its_own_outcome(org: Any, make_client: Any) -> None:
    mailing_id, ids = _mailing(org, make_client, 3)
    now = timezone.now()
    # each was tried before: a due retry with the previous call's error
    Delivery.objects.filter(pk__in=ids).update(
        next_attempt_at=now - timedelta(seconds=1), last_error="HTTP 502 earlier"
    )
    rows = claim(mailing_id=mailing_id, token="A", size=10, now=now)
    by_id = {r.id: r for r in rows}
    ok, retry, failed = (by_id[pk] for pk in ids)

    outcome = record(
        mailing_id=mailing_id,
        rows=[ok, retry, failed],
        results=[OK, TRANSIENT, PERMANENT],
        token="A",
        breakers=ALL_CLOSED,
    )

    assert (outcome.sent, outcome.retry, outcome.failed, outcome.tripped) == (1, 1, 1, False)
    sent_row, retry_row, failed_row = (Delivery.objects.get(pk=pk) for pk in ids)
    assert (sent_row.status, sent_row.claim_token, sent_row.last_error) == ("sent", "", "")
    assert sent_row.sent_at is not None and sent_row.next_attempt_at is None
    # the retry: pending again, its attempt counted, after a backoff, not at once
    assert (retry_row.status, retry_row.claim_token, retry_row.attempts) == ("pending", "", 1)
    assert retry_row.next_attempt_at is not None and retry_row.next_attempt_at > now
    assert "503" in retry_row.last_error
    assert (failed_row.status, failed_row.claim_token) == ("failed", "")
    assert failed_row.next_attempt_at is None and "400" in failed_row.last_error
    assert DeliveryAttempt.objects.filter(delivery_id__in=ids).count() == 3
    # each status change is stamped (the claim stamped `now`; the record is later)
    assert all(r.updated_at > now for r in (sent_row, retry_row, failed_row))
    # the retry is not due before its backoff, and the others are never claimed again
    assert claim(mailing_id=mailing_id, token="B", size=10, now=timezone.now()) == []
    later = claim(mailing_id=mailing_id, token="C", size=10, now=retry_row.next_attempt_at)
    assert [r.id for r in later] == [retry_row.pk] and later[0].attempts == 2
    # failing for good now: no "next attempt" is left on it
    record(mailing_id=mailing_id, rows=later, results=[PERMANENT], token="C", breakers=ALL_CLOSED)
    retry_row.refresh_from_db()
    assert (retry_row.status, retry_row.next_attempt_at) == ("failed", None)


def test_a_stale_worker_records_nothing_over_the_new_claimant(org: Any, make_client: Any) -> None:
    mailing_id, (pk,) = _mailing(org, make_client, 1)
    now = timezone.now()
    (stale,) = claim(mailing_id=mailing_id, token="A", size=1, now=now)
    # A's claim is reclaimed (its worker looked dead) and B claims the row again
    Delivery.objects.filter(pk=pk).update(status="pending", claim_token="")
    (fresh,) = claim(mailing_id=mailing_id, token="B", size=1, now=now)

    record(mailing_id=mailing_id, rows=[stale], results=[PERMANENT], token="A", breakers=ALL_CLOSED)
    assert _status(pk) == ("sending", "B", 2)  # A's failure did not end B's attempt

    record(mailing_id=mailing_id, rows=[fresh], results=[OK], token="B", breakers=ALL_CLOSED)
    assert _status(pk)[:2] == ("sent", "")
    # a very late record by A changes nothing either
    record(mailing_id=mailing_id, rows=[stale], results=[TRANSIENT], token="A", breakers=ALL_CLOSED)
    assert _status(pk)[:2] == ("sent", "")
    # every try is on record, A's included, each once (one row per try, written at its
    # claim: A's repeated record of its one try does not add a row)
    attempts = DeliveryAttempt.objects.filter(delivery_id=pk).order_by("number")
    assert list(attempts.values_list("number", "outcome")) == [(1, "permanent"), (2, "ok")]


def test_a_tripped_breaker_refunds_the_attempts(org: Any, make_client: Any, settings: Any) -> None:
    settings.MAILING_BREAKER_MIN_FAILURES = 3
    mailing_id, ids = _mailing(org, make_client, 3)
    rows = claim(mailing_id=mailing_id, token="A", size=10, now=timezone.now())
    outcome = record(
        mailing_id=mailing_id, rows=rows, results=[TRANSIENT] * 3, token="A", breakers=ALL_CLOSED
    )
    assert outcome.tripped and outcome.breaker_until > 0
    assert (outcome.retry, outcome.sent, outcome.failed) == (3, 0, 0)
    assert breaker_state().trips == 1
    for pk in ids:
        row = Delivery.objects.get(pk=pk)
        # back to pending, the attempt not counted, due when the breaker closes
        assert (row.status, row.claim_token, row.attempts) == ("pending", "", 0)
        assert row.next_attempt_at is not None
        assert abs(row.next_attempt_at.timestamp() - outcome.breaker_until) < 0.01


def test_below_the_breaker_threshold_a_failure_is_an_ordinary_retry(
    org: Any, make_client: Any, settings: Any
) -> None:
    settings.MAILING_BREAKER_MIN_FAILURES = 3
    mailing_id, ids = _mailing(org, make_client, 3)
    rows = claim(mailing_id=mailing_id, token="A", size=10, now=timezone.now())
    # two transient of three: the ratio (0.67) is over 0.5, the count (2) under 3
    outcome = record(
        mailing_id=mailing_id,
        rows=rows,
        results=[TRANSIENT, TRANSIENT, OK],
        token="A",
        breakers=ALL_CLOSED,
    )
    assert not outcome.tripped and outcome.retry == 2 and outcome.sent == 1
    assert breaker_state() == CLOSED
    assert [_status(pk)[2] for pk in ids] == [1, 1, 1]  # counted, not refunded


def test_a_probe_batch_after_a_trip_trips_again_on_one_failure_or_closes_on_success(
    org: Any, make_client: Any
) -> None:
    mailing_id, _ = _mailing(org, make_client, 2)
    now = timezone.now()
    open_before = Breaker(open_until=0.0, trips=1)
    (row,) = claim(mailing_id=mailing_id, token="A", size=1, now=now)
    # one failure is enough once the breaker has tripped (no minimum count)
    outcome = record(
        mailing_id=mailing_id,
        rows=[row],
        results=[TRANSIENT],
        token="A",
        breakers={"sms": open_before},
    )
    assert outcome.tripped and breaker_state().trips == 2
    (probe,) = claim(mailing_id=mailing_id, token="B", size=1, now=now)
    outcome = record(
        mailing_id=mailing_id,
        rows=[probe],
        results=[OK],
        token="B",
        breakers={"sms": breaker_state()},
    )
    assert not outcome.tripped and breaker_state() == CLOSED


def test_a_lane_with_a_closed_snapshot_does_not_close_a_breaker_another_lane_opened(
    org: Any, make_client: Any, redis_client: Any
) -> None:
    mailing_id, _ = _mailing(org, make_client, 1)
    rows = claim(mailing_id=mailing_id, token="A", size=1, now=timezone.now())
    # another lane trips the breaker while this one's batch (read it closed) is in flight
    redis_client.hset(breaker_key("sms"), mapping={"open_until": 0, "trips": 1})
    record(mailing_id=mailing_id, rows=rows, results=[OK], token="A", breakers=ALL_CLOSED)
    # only a probe batch (sent while the breaker was open) may close it
    assert breaker_state().trips == 1


def test_a_message_ending_before_the_breaker_reopens_keeps_its_last_try(
    org: Any, make_client: Any, settings: Any
) -> None:
    # the breaker trips for at least 50 s; one message ends in 20 s: it is not parked
    # until the breaker closes (after its end: lost), it gets its last try; the other
    # (ending in an hour) waits for the breaker, its attempt refunded
    settings.MAILING_BREAKER_MIN_FAILURES = 1
    settings.SENDER_BACKOFF_BASE = 100.0
    mailing_id, (ending, later) = _mailing(org, make_client, 2)
    now = timezone.now()
    Delivery.objects.filter(pk=ending).update(deadline=now + timedelta(seconds=20))
    rows = claim(mailing_id=mailing_id, token="A", size=2, now=now)
    outcome = record(
        mailing_id=mailing_id,
        rows=rows,
        results=[TRANSIENT, TRANSIENT],
        token="A",
        breakers=ALL_CLOSED,
    )
    assert outcome.tripped and outcome.breaker_until > (now + timedelta(seconds=40)).timestamp()
    last_try = Delivery.objects.get(pk=ending)
    assert (last_try.status, last_try.attempts) == ("pending", 1)
    assert last_try.next_attempt_at is not None and last_try.next_attempt_at < last_try.deadline
    parked = Delivery.objects.get(pk=later)
    assert (parked.status, parked.attempts) == ("pending", 0)
    assert parked.next_attempt_at is not None
    assert abs(parked.next_attempt_at.timestamp() - outcome.breaker_until) < 0.01


def test_an_opt_out_fails_only_that_clients_promo_message(org: Any, make_client: Any) -> None:
    from mailing.services import mailing_create, mailing_start

    keen, changed_mind = make_client(org), make_client(org)
    now = timezone.now()
    mailings = {}
    for promo in (True, False):
        mailing = mailing_create(
            organization=org,
            start_at=now,
            end_at=now + timedelta(hours=1),
            text="Hi",
            promo=promo,
        )
        mailing_start(mailing_id=mailing.pk)
        mailings[promo] = mailing.pk
    # the client opts out after both mailings started (their messages exist)
    changed_mind.promo_opt_out = True
    changed_mind.save(update_fields=["promo_opt_out"])
    # its promo message had been retried once: due again now
    Delivery.objects.filter(
        mailing_message__mailing_id=mailings[True], mailing_message__client=changed_mind
    ).update(next_attempt_at=now - timedelta(seconds=1))

    def row(promo: bool, client: Any) -> Delivery:
        return Delivery.objects.get(
            mailing_message__mailing_id=mailings[promo], mailing_message__client=client
        )

    rows = claim(mailing_id=mailings[True], token="A", size=10, now=now, promo=True)
    # the promo goes to the keen client only; the other's is final, never sent
    assert [r.id for r in rows] == [row(True, keen).pk]
    skipped = row(True, changed_mind)
    assert (skipped.status, skipped.attempts) == ("failed", 0)
    assert "opted out" in skipped.last_error
    assert (skipped.next_attempt_at, skipped.updated_at) == (None, now)
    # a service message (not a promo) to the same client is not touched by the opt-out
    assert row(False, changed_mind).status == "pending"
    service = claim(mailing_id=mailings[False], token="B", size=10, now=now)
    assert {r.id for r in service} == {row(False, keen).pk, row(False, changed_mind).pk}


def test_half_the_batch_failing_is_enough_to_trip(
    org: Any, make_client: Any, settings: Any
) -> None:
    settings.MAILING_BREAKER_MIN_FAILURES = 1  # MAILING_BREAKER_RATIO is 0.5
    mailing_id, _ = _mailing(org, make_client, 2)
    rows = claim(mailing_id=mailing_id, token="A", size=2, now=timezone.now())
    outcome = record(
        mailing_id=mailing_id, rows=rows, results=[TRANSIENT, OK], token="A", breakers=ALL_CLOSED
    )
    assert outcome.tripped and breaker_state().trips == 1
