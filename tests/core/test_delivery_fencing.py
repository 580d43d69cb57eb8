"""The outbox protocol of core/outbox, driven deterministically.

Each test here exists because a small planted bug survived the rest of the suite
(issue: tests that catch the bugs that matter): the record not fenced by the claim
token or the `sending` status, a lost claim reported as applied, a reclaim that ignores
the claim's age, its row locks or its source, a claim that ignores `next_attempt_at`,
no backoff between retries. Two claimants and a reclaim between claim and record are
played in one thread, in order; the clock is moved with time-machine.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, connections, transaction
from django.utils import timezone

from core.models import Delivery, DeliveryAttempt, Organization
from core.outbox import (
    deliveries_overdue,
    delivery_claim,
    delivery_reclaim_stale,
    delivery_record,
    new_claim_token,
)
from core.sender import SendResult

OK = SendResult(outcome="ok", status_code=200, duration_ms=5)
TRANSIENT = SendResult(outcome="transient", status_code=503, duration_ms=5, error="503")


@pytest.fixture
def organization(db: None) -> Organization:
    return Organization.objects.create(slug="fence", name="fence")


def _delivery(organization: Organization, **fields: object) -> Delivery:
    defaults: dict[str, object] = {
        "organization": organization,
        "source": Delivery.Source.CHAT,
        "phone": 79001234567,
        "text": "hello",
    }
    defaults.update(fields)
    return Delivery.objects.create(**defaults)


def _record(delivery: Delivery, token: str, result: SendResult):  # type: ignore[no-untyped-def]
    with transaction.atomic():
        return delivery_record(delivery=delivery, token=token, result=result)


# --- claim --------------------------------------------------------------------------


def test_of_two_claimants_one_wins(organization: Organization) -> None:
    row = _delivery(organization)
    first = delivery_claim(delivery_id=row.pk, token=new_claim_token())
    second = delivery_claim(delivery_id=row.pk, token=new_claim_token())
    assert first is not None and first.status == Delivery.Status.SENDING
    assert first.attempts == 1
    assert second is None


def test_a_claim_before_the_backoff_ends_is_refused(organization: Organization) -> None:
    # given: a row waiting for its retry in 30 s
    now = timezone.now()
    row = _delivery(organization, next_attempt_at=now + timedelta(seconds=30))
    # when: a job runs early; then: no claim
    assert delivery_claim(delivery_id=row.pk, token="early", now=now) is None
    assert Delivery.objects.get(pk=row.pk).status == Delivery.Status.PENDING
    # and at its time it is claimed
    claimed = delivery_claim(delivery_id=row.pk, token="due", now=now + timedelta(seconds=30))
    assert claimed is not None and claimed.claim_token == "due"


def test_a_claim_past_the_deadline_expires_the_row(organization: Organization) -> None:
    now = timezone.now()
    row = _delivery(organization, deadline=now - timedelta(seconds=1))
    assert delivery_claim(delivery_id=row.pk, token="late", now=now) is None
    assert Delivery.objects.get(pk=row.pk).status == Delivery.Status.EXPIRED


def test_expiring_one_row_leaves_the_others_alone(organization: Organization) -> None:
    # given: a row past its deadline and a due row with time left
    now = timezone.now()
    late = _delivery(organization, deadline=now - timedelta(seconds=1))
    due = _delivery(organization, deadline=now + timedelta(minutes=5))
    # when: the due row is claimed; then: it is claimed, and the late one is untouched
    claimed = delivery_claim(delivery_id=due.pk, token="t", now=now)
    assert claimed is not None and claimed.pk == due.pk
    late.refresh_from_db()
    assert (late.status, late.last_error) == (Delivery.Status.PENDING, "")
    # and claiming the late one expires it, saying why
    assert delivery_claim(delivery_id=late.pk, token="t", now=now) is None
    late.refresh_from_db()
    assert late.status == Delivery.Status.EXPIRED
    assert late.last_error == "deadline passed"


def test_a_repeated_job_past_the_deadline_does_not_expire_a_finished_row(
    organization: Organization,
) -> None:
    # A deliver job run twice (a duplicate enqueue): the second run comes after the
    # deadline, on a row already sent or in flight. Neither may turn into `expired`.
    now = timezone.now()
    for status in (Delivery.Status.SENT, Delivery.Status.SENDING, Delivery.Status.FAILED):
        row = _delivery(organization, status=status, deadline=now - timedelta(seconds=1))
        assert delivery_claim(delivery_id=row.pk, token="t", now=now) is None
        assert Delivery.objects.get(pk=row.pk).status == status


def test_only_pending_rows_are_claimed(organization: Organization) -> None:
    for status in (Delivery.Status.SENT, Delivery.Status.FAILED, Delivery.Status.SENDING):
        row = _delivery(organization, status=status)
        assert delivery_claim(delivery_id=row.pk, token="t") is None
        assert Delivery.objects.get(pk=row.pk).status == status


# --- record ---------------------------------------------------------------------------


def test_record_applies_for_the_claim_holder(organization: Organization) -> None:
    row = _delivery(organization)
    claimed = delivery_claim(delivery_id=row.pk, token="mine")
    assert claimed is not None
    recorded = _record(claimed, "mine", OK)
    assert recorded.applied is True
    row.refresh_from_db()
    assert (row.status, row.claim_token) == (Delivery.Status.SENT, "")
    assert row.sent_at is not None


def test_a_worker_that_lost_its_claim_does_not_overwrite_the_outcome(
    organization: Organization,
) -> None:
    # given: worker A claims, its claim goes stale and is reclaimed, worker B claims
    now = timezone.now()
    row = _delivery(organization)
    stale = delivery_claim(delivery_id=row.pk, token="A", now=now - timedelta(minutes=10))
    assert stale is not None
    assert delivery_reclaim_stale(source=Delivery.Source.CHAT) == [row.pk]
    fresh = delivery_claim(delivery_id=row.pk, token="B")
    assert fresh is not None
    # when: A's late answer (a failure) arrives first, then B's success
    late = _record(stale, "A", TRANSIENT)
    won = _record(fresh, "B", OK)
    # then: A's record is refused and reported as such; B's outcome stands
    assert late.applied is False
    assert won.applied is True
    row.refresh_from_db()
    assert row.status == Delivery.Status.SENT
    # every attempt is on record, the late one included
    assert DeliveryAttempt.objects.filter(delivery=row).count() == 2


def test_a_late_record_after_the_winner_finished_changes_nothing(
    organization: Organization,
) -> None:
    # given: B won and finished (sent), then A's stale record arrives with A's token
    row = _delivery(organization)
    a = delivery_claim(delivery_id=row.pk, token="A", now=timezone.now() - timedelta(hours=1))
    assert a is not None
    delivery_reclaim_stale(source=Delivery.Source.CHAT)
    b = delivery_claim(delivery_id=row.pk, token="B")
    assert b is not None
    _record(b, "B", OK)
    # when
    late = _record(a, "A", TRANSIENT)
    # then: sent stays sent, with no retry scheduled
    assert late.applied is False
    row.refresh_from_db()
    assert row.status == Delivery.Status.SENT
    assert row.next_attempt_at is None


def test_a_record_with_the_right_token_on_a_row_not_sending_is_refused(
    organization: Organization,
) -> None:
    # given: a row put back to pending by hand (e.g. the sweeper) that kept its token
    row = _delivery(organization)
    claimed = delivery_claim(delivery_id=row.pk, token="T")
    assert claimed is not None
    Delivery.objects.filter(pk=row.pk).update(status=Delivery.Status.PENDING)
    # when
    recorded = _record(claimed, "T", OK)
    # then: the status condition of the fence holds on its own
    assert recorded.applied is False
    assert Delivery.objects.get(pk=row.pk).status == Delivery.Status.PENDING


def test_a_transient_failure_backs_off_before_the_next_claim(
    organization: Organization, settings: object
) -> None:
    settings.SENDER_BACKOFF_BASE = 10  # type: ignore[attr-defined]
    settings.SENDER_BACKOFF_MAX = 100  # type: ignore[attr-defined]
    with time_machine.travel(timezone.now(), tick=False) as clock:
        row = _delivery(organization)
        claimed = delivery_claim(delivery_id=row.pk, token="T")
        assert claimed is not None
        recorded = _record(claimed, "T", TRANSIENT)
        assert recorded.status == Delivery.Status.PENDING
        assert recorded.retry_at is not None
        assert Delivery.objects.get(pk=row.pk).last_error == "503"
        # equal jitter: at least half of the first step (10 s) lies ahead
        assert recorded.retry_at >= timezone.now() + timedelta(seconds=5)
        # a job that runs now cannot claim it
        assert delivery_claim(delivery_id=row.pk, token="again") is None
        clock.shift(timedelta(seconds=11))
        assert delivery_claim(delivery_id=row.pk, token="again") is not None


# --- reclaim --------------------------------------------------------------------------


def test_reclaim_leaves_a_claim_in_flight_alone(organization: Organization) -> None:
    # given: one claim made just now (its call may still be under way), one long ago
    fresh = _delivery(organization)
    old = _delivery(organization)
    delivery_claim(delivery_id=fresh.pk, token="F")
    delivery_claim(delivery_id=old.pk, token="O", now=timezone.now() - timedelta(minutes=5))
    # when
    reclaimed = delivery_reclaim_stale(source=Delivery.Source.CHAT)
    # then: only the old one goes back to pending
    assert reclaimed == [old.pk]
    assert Delivery.objects.get(pk=fresh.pk).status == Delivery.Status.SENDING
    old.refresh_from_db()
    assert (old.status, old.claim_token) == (Delivery.Status.PENDING, "")


def test_reclaim_keeps_to_its_source(organization: Organization) -> None:
    long_ago = timezone.now() - timedelta(minutes=5)
    chat = _delivery(organization, source=Delivery.Source.CHAT)
    mailing = _delivery(organization, source=Delivery.Source.MAILING)
    for row in (chat, mailing):
        delivery_claim(delivery_id=row.pk, token="x", now=long_ago)
    assert delivery_reclaim_stale(source=Delivery.Source.CHAT) == [chat.pk]
    assert Delivery.objects.get(pk=mailing.pk).status == Delivery.Status.SENDING
    assert delivery_reclaim_stale(source=Delivery.Source.MAILING) == [mailing.pk]


def test_reclaim_touches_only_sending_rows(organization: Organization) -> None:
    long_ago = timezone.now() - timedelta(minutes=5)
    done = _delivery(organization, status=Delivery.Status.SENT, claimed_at=long_ago)
    assert delivery_reclaim_stale(source=Delivery.Source.CHAT) == []
    assert Delivery.objects.get(pk=done.pk).status == Delivery.Status.SENT


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks with SKIP LOCKED: PostgreSQL only"
)
@pytest.mark.django_db(transaction=True)
def test_two_sweepers_racing_reclaim_each_row_once() -> None:
    """Sweeper 1 holds its rows locked inside its transaction; sweeper 2, running then,
    must skip them instead of reclaiming them a second time (each reclaimed id is
    re-enqueued by its owner: twice means two jobs for one message)."""
    organization = Organization.objects.create(slug="race", name="race")
    long_ago = timezone.now() - timedelta(minutes=5)
    rows = [_delivery(organization) for _ in range(20)]
    for row in rows:
        delivery_claim(delivery_id=row.pk, token="x", now=long_ago)
    inside = threading.Event()
    release = threading.Event()
    first: list[int] = []
    second: list[int] = []

    def sweeper_one() -> None:
        try:
            with transaction.atomic():
                first.extend(delivery_reclaim_stale(source=Delivery.Source.CHAT))
                inside.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=sweeper_one)
    thread.start()
    assert inside.wait(10)
    # A sweeper that waited for sweeper 1's locks would stall here; skipping them is the
    # point, so waiting is an error rather than a slow pass.
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '3s'")
    try:
        second.extend(delivery_reclaim_stale(source=Delivery.Source.CHAT))
    finally:
        release.set()
        thread.join(10)
    assert sorted(first) == sorted(r.pk for r in rows)
    assert second == []


def test_every_transition_stamps_updated_at(organization: Organization) -> None:
    """`.update()` skips auto_now: each transition sets `updated_at` itself, or the admin
    shows when a row was created, not when it last moved."""
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        row = _delivery(organization)
        late = _delivery(organization, deadline=start + timedelta(seconds=30))
        clock.shift(timedelta(seconds=10))
        claimed = delivery_claim(delivery_id=row.pk, token="T")
        assert claimed is not None
        assert claimed.updated_at == timezone.now()
        clock.shift(timedelta(seconds=10))
        _record(claimed, "T", OK)
        assert Delivery.objects.get(pk=row.pk).updated_at == timezone.now()
        clock.shift(timedelta(seconds=20))
        assert delivery_claim(delivery_id=late.pk, token="T") is None
        late.refresh_from_db()
        assert (late.status, late.updated_at) == (Delivery.Status.EXPIRED, timezone.now())


def test_reclaim_takes_the_callers_age(organization: Organization) -> None:
    row = _delivery(organization)
    delivery_claim(delivery_id=row.pk, token="x", now=timezone.now() - timedelta(seconds=20))
    # the default age (3 x SENDER_TIMEOUT) is not reached; the caller's 10 s is
    assert delivery_reclaim_stale(source=Delivery.Source.CHAT) == []
    assert delivery_reclaim_stale(
        source=Delivery.Source.CHAT, older_than=timedelta(seconds=10)
    ) == [row.pk]


def test_with_lost_answers_final_an_abandoned_call_fails_for_good(
    organization: Organization, settings: object
) -> None:
    settings.SENDER_RETRY_ON_LOST_ANSWER = False  # type: ignore[attr-defined]
    long_ago = timezone.now() - timedelta(minutes=5)
    abandoned = _delivery(organization, next_attempt_at=long_ago)
    in_flight = _delivery(organization)
    done = _delivery(organization, status=Delivery.Status.SENT, claimed_at=long_ago)
    delivery_claim(delivery_id=abandoned.pk, token="A", now=long_ago)
    delivery_claim(delivery_id=in_flight.pk, token="B")
    # when
    assert delivery_reclaim_stale(source=Delivery.Source.CHAT) == [abandoned.pk]
    # then: failed, never to be claimed again, saying why; the others untouched
    abandoned.refresh_from_db()
    assert abandoned.status == Delivery.Status.FAILED
    assert (abandoned.claim_token, abandoned.next_attempt_at) == ("", None)
    assert "worker stopped during the call" in abandoned.last_error
    assert abandoned.updated_at > long_ago + timedelta(minutes=4)  # stamped now
    assert delivery_claim(delivery_id=abandoned.pk, token="C") is None
    assert Delivery.objects.get(pk=in_flight.pk).status == Delivery.Status.SENDING
    assert Delivery.objects.get(pk=done.pk).status == Delivery.Status.SENT


def test_overdue_deliveries_keep_to_their_source(organization: Organization) -> None:
    # A chat sweeper re-enqueueing a mailing's row would send it outside its lane
    # (no end guard, no breaker).
    long_ago = timezone.now() - timedelta(minutes=10)
    chat = _delivery(organization, source=Delivery.Source.CHAT, next_attempt_at=long_ago)
    mailing = _delivery(organization, source=Delivery.Source.MAILING, next_attempt_at=long_ago)
    assert deliveries_overdue(source=Delivery.Source.CHAT) == [chat.pk]
    assert deliveries_overdue(source=Delivery.Source.MAILING) == [mailing.pk]
