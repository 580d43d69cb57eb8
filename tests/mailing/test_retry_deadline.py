"""Retries until the message's deadline, and what a lost answer leads to (issue 10 item 4).

One decision, `core.outbox.retry_decision`, for the mailing dispatch (batch record)
and the chat deliveries (`delivery_record`). Attempts go over real HTTP to the sender
simulator (mailing: the dispatch's own asyncio transport; chat: httpx); the clock is
moved with time-machine to each retry's due time instead of waiting for it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from core.models import Delivery, DeliveryAttempt
from core.outbox import delivery_claim, delivery_record, new_claim_token, retry_decision
from core.sender import send_sync
from tests.conftest import free_port, wait_until

pytestmark = pytest.mark.django_db


# --- helpers ------------------------------------------------------------------------------


def _mailing_message(org: Any, make_client: Any, *, minutes: float = 10) -> Delivery:
    """One running mailing to one client, ending `minutes` from now: its one message."""
    from mailing.services import mailing_create, mailing_start

    make_client(org)
    now = timezone.now()
    mailing = mailing_create(
        organization=org, start_at=now, end_at=now + timedelta(minutes=minutes), text="Hi"
    )
    mailing_start(mailing_id=mailing.pk)
    return Delivery.objects.get(mailing_message__mailing=mailing)


def _dispatch_once(delivery: Delivery) -> str:
    """One dispatch batch for the message's mailing (claim, call the sender, record), at
    the current (maybe travelled) time. Returns the message's status afterwards."""
    from mailing.dispatch import breaker_states, claim, open_sender, record, send_all

    mailing_id = delivery.mailing_message.mailing_id  # type: ignore[attr-defined]
    token = new_claim_token()
    rows = claim(mailing_id=mailing_id, token=token, size=10, now=timezone.now())
    assert [r.id for r in rows] == [delivery.pk], "the message was not due"

    async def send() -> list[Any]:
        sender = open_sender()
        try:
            return await send_all(sender, rows)
        finally:
            await sender.aclose()

    results = asyncio.run(send())
    record(
        mailing_id=mailing_id, rows=rows, results=results, token=token, breakers=breaker_states()
    )
    delivery.refresh_from_db()
    return delivery.status


def _chat_delivery(org: Any, deadline: datetime | None = None) -> Delivery:
    return Delivery.objects.create(
        organization=org, source="chat", phone=79161234567, text="hi", deadline=deadline
    )


def _deliver_once(delivery: Delivery) -> str:
    """One chat delivery attempt (claim, httpx call, record) at the current time."""
    token = new_claim_token()
    claimed = delivery_claim(delivery_id=delivery.pk, token=token)
    if claimed is not None:
        result = send_sync(msg_id=claimed.pk, phone=claimed.phone, text=claimed.text)
        delivery_record(delivery=claimed, token=token, result=result)
    delivery.refresh_from_db()
    return delivery.status


def _at_next_try(delivery: Delivery) -> time_machine.travel:
    assert delivery.next_attempt_at is not None
    return time_machine.travel(delivery.next_attempt_at, tick=True)


def _outcomes(delivery: Delivery) -> list[str]:
    return list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("outcome", flat=True))


# --- retries until the deadline -----------------------------------------------------------


def test_message_with_deadline_keeps_retrying_past_max_attempts_and_is_sent(
    org: Any, make_client: Any, sender: Any, settings: Any
) -> None:
    # given: a mailing with ten minutes left, and a sender answering 500 to everything
    settings.SENDER_MAX_ATTEMPTS = 6
    delivery = _mailing_message(org, make_client, minutes=10)
    sender.control(error_rate=1)

    # when: the message meets nine transient failures in a row
    assert _dispatch_once(delivery) == "pending"
    for _ in range(8):
        with _at_next_try(delivery):
            assert _dispatch_once(delivery) == "pending", delivery.last_error

    # then: it is still pending (not failed at six), its retries inside the mailing
    assert delivery.attempts == 9
    assert delivery.next_attempt_at is not None and delivery.deadline is not None
    assert delivery.next_attempt_at < delivery.deadline
    # and when the sender recovers, the next try sends it, exactly once
    sender.control(error_rate=0)
    with _at_next_try(delivery):
        assert _dispatch_once(delivery) == "sent"
    assert _outcomes(delivery) == ["transient"] * 9 + ["ok"]
    assert sender.accepted(delivery.pk) == 1


def test_message_without_deadline_fails_after_max_attempts(
    org: Any, sender: Any, settings: Any
) -> None:
    # given: a chat message (no deadline) and a sender answering 500 to everything
    settings.SENDER_MAX_ATTEMPTS = 4
    delivery = _chat_delivery(org)
    sender.control(error_rate=1)

    # when: it is tried whenever due
    assert _deliver_once(delivery) == "pending"
    for _ in range(2):
        with _at_next_try(delivery):
            assert _deliver_once(delivery) == "pending"
    with _at_next_try(delivery):
        status = _deliver_once(delivery)

    # then: the fourth failure is final
    assert (status, delivery.attempts) == ("failed", 4)
    assert delivery.next_attempt_at is None
    assert "gave up after 4 attempts" in delivery.last_error
    assert sender.stats()["requests"] == 4


def test_past_the_deadline_the_message_expires(
    org: Any, make_client: Any, sender: Any, settings: Any
) -> None:
    # given: a mailing message that failed once, and a backoff far longer than the mailing
    delivery = _mailing_message(org, make_client, minutes=1)
    sender.control(error_rate=1)
    settings.SENDER_BACKOFF_BASE = settings.SENDER_BACKOFF_MAX = 600.0
    assert _dispatch_once(delivery) == "pending"
    # then: its retry is pulled in before the end (a last try) instead of giving up now
    assert delivery.deadline is not None and delivery.next_attempt_at is not None
    guard = timedelta(seconds=settings.MAILING_END_GUARD)
    assert delivery.next_attempt_at < delivery.deadline - guard
    # when: that last try fails too
    with _at_next_try(delivery):
        status = _dispatch_once(delivery)
    # then: nothing is left before the deadline: expired, not failed
    assert status == "expired"
    assert sender.stats()["requests"] == 2

    # and a chat delivery with a deadline that passed while it waited expires unclaimed
    chat = _chat_delivery(org, deadline=timezone.now() + timedelta(minutes=10))
    assert _deliver_once(chat) == "pending"
    with time_machine.travel(timezone.now() + timedelta(minutes=11), tick=True):
        assert _deliver_once(chat) == "expired"
    assert sender.stats()["requests"] == 3


@pytest.mark.parametrize(
    ("attempts", "deadline_in", "expected"),
    [
        (1, None, "pending"),
        (6, None, "failed"),  # SENDER_MAX_ATTEMPTS without a deadline
        (50, timedelta(minutes=10), "pending"),  # the count does not matter with one
        (5000, timedelta(days=30), "pending"),  # nor overflows the backoff
        (3, timedelta(seconds=0.5), "expired"),  # no time left for another try
        (3, -timedelta(seconds=1), "expired"),
    ],
)
def test_retry_decision_for_transient_failures(
    attempts: int, deadline_in: timedelta | None, expected: str, settings: Any
) -> None:
    settings.SENDER_MAX_ATTEMPTS = 6
    now = timezone.now()
    deadline = now + deadline_in if deadline_in is not None else None
    decision = retry_decision("transient", attempts, deadline, now)
    assert decision.status == expected
    if expected == "pending":
        assert decision.retry_at is not None and decision.retry_at > now
        assert deadline is None or decision.retry_at < deadline
        assert decision.retry_at <= now + timedelta(seconds=settings.SENDER_BACKOFF_MAX)


# --- a lost answer ---------------------------------------------------------------------------


def _lose_the_answer(sender: Any, settings: Any) -> None:
    """The simulator takes the message, but answers after our timeout."""
    settings.SENDER_TIMEOUT = 0.5
    sender.control(latency_ms=1500)


@pytest.mark.parametrize("path", ["mailing", "chat"])
def test_lost_answer_retried_with_the_same_msg_id(
    path: str, org: Any, make_client: Any, sender: Any, settings: Any
) -> None:
    settings.SENDER_RETRY_ON_LOST_ANSWER = True
    attempt = _dispatch_once if path == "mailing" else _deliver_once
    delivery = _mailing_message(org, make_client) if path == "mailing" else _chat_delivery(org)
    # given: a call whose answer is lost although the provider took the message
    _lose_the_answer(sender, settings)
    assert attempt(delivery) == "pending"
    wait_until(lambda: sender.accepted(delivery.pk) == 1, timeout=10)
    # when: it is retried once the sender answers in time again
    sender.control(latency_ms=0)
    with _at_next_try(delivery):
        assert attempt(delivery) == "sent"
    # then: the retry reused the msgId (the provider's idempotency key): the provider saw
    # one message id twice, which it de-duplicates; no second id was ever sent
    assert sender.accepted(delivery.pk) == 2
    assert sender.stats()["requests"] == 2
    assert _outcomes(delivery) == ["transient", "ok"]


@pytest.mark.parametrize("path", ["mailing", "chat"])
def test_lost_answer_not_retried_when_disabled(
    path: str, org: Any, make_client: Any, sender: Any, settings: Any
) -> None:
    settings.SENDER_RETRY_ON_LOST_ANSWER = False
    attempt = _dispatch_once if path == "mailing" else _deliver_once
    delivery = _mailing_message(org, make_client) if path == "mailing" else _chat_delivery(org)
    # given: a call whose answer is lost although the provider took the message
    _lose_the_answer(sender, settings)
    # when: the attempt is recorded
    status = attempt(delivery)
    # then: the message is final and never called again, even with time left
    assert status == "failed"
    assert "answer lost" in delivery.last_error
    assert delivery.next_attempt_at is None
    sender.control(latency_ms=0)
    with time_machine.travel(timezone.now() + timedelta(minutes=1), tick=True):
        if path == "chat":
            assert _deliver_once(delivery) == "failed"
        else:
            from mailing.dispatch import claim

            mailing_id = delivery.mailing_message.mailing_id  # type: ignore[attr-defined]
            assert claim(mailing_id=mailing_id, token="t", size=10, now=timezone.now()) == []
    wait_until(lambda: sender.accepted(delivery.pk) == 1, timeout=10)
    assert sender.stats()["requests"] == 1


def test_request_never_sent_is_retried_even_when_lost_answers_are_not(
    org: Any, sender: Any, settings: Any
) -> None:
    # given: lost answers are final, and the sender's port refuses connections
    settings.SENDER_RETRY_ON_LOST_ANSWER = False
    settings.SENDER_URL = f"http://127.0.0.1:{free_port()}"
    delivery = _chat_delivery(org)
    # when: an attempt fails to connect
    status = _deliver_once(delivery)
    # then: nothing reached the provider, so it is an ordinary transient failure
    assert status == "pending", delivery.last_error
    assert "answer lost" not in delivery.last_error


def test_worker_dead_during_the_call_with_lost_answers_final(org: Any, settings: Any) -> None:
    from core.outbox import delivery_reclaim_stale

    # given: a claimed message whose worker died during the call
    settings.SENDER_RETRY_ON_LOST_ANSWER = False
    delivery = _chat_delivery(org)
    assert delivery_claim(delivery_id=delivery.pk, token="dead") is not None
    # when: the sweeper finds it
    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=True):
        assert delivery_reclaim_stale(source="chat") == [delivery.pk]
    # then: it is failed (the call may have gone out), not put back to pending
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert "answer lost" in delivery.last_error
