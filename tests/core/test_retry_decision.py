"""The one retry decision of the outbox (`core.outbox.retry_decision`), as a table.

Backoff is pinned (monkeypatched `backoff_delay`) so each boundary is exact: the chain
ends only at its deadline (with one last try just before it), or after
SENDER_MAX_ATTEMPTS without one; a lost answer follows SENDER_RETRY_ON_LOST_ANSWER.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.models import Delivery
from core.outbox import decision as decision_module
from core.outbox.decision import (
    LAST_TRY_MARGIN,
    LOST_ANSWER_FINAL,
    Decision,
    chain_error,
    outcome_of,
    retry_decision,
)
from core.sender import SendResult

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
STEP = timedelta(seconds=10)


@pytest.fixture(autouse=True)
def fixed_backoff(monkeypatch: Any, settings: Any) -> None:
    monkeypatch.setattr(decision_module, "backoff_delay", lambda attempts: STEP.total_seconds())
    settings.SENDER_MAX_ATTEMPTS = 3
    settings.SENDER_RETRY_ON_LOST_ANSWER = True


def test_ok_and_permanent_end_the_chain() -> None:
    assert retry_decision("ok", 1, None, NOW) == Decision(Delivery.Status.SENT)
    assert retry_decision("permanent", 1, None, NOW) == Decision(Delivery.Status.FAILED)


def test_without_a_deadline_the_count_decides() -> None:
    assert retry_decision("transient", 2, None, NOW) == Decision(
        Delivery.Status.PENDING, NOW + STEP
    )
    final = retry_decision("transient", 3, None, NOW)
    assert final.status == Delivery.Status.FAILED
    assert "3 attempts" in final.reason
    assert retry_decision("transient", 1, None, NOW, max_attempts=1).status == "failed"


def test_with_a_deadline_the_count_does_not_matter() -> None:
    deadline = NOW + timedelta(minutes=10)
    decision = retry_decision("transient", 50, deadline, NOW)
    assert decision == Decision(Delivery.Status.PENDING, NOW + STEP)


def test_a_backoff_past_the_deadline_becomes_one_last_try_before_it() -> None:
    deadline = NOW + timedelta(seconds=5)
    decision = retry_decision("transient", 1, deadline, NOW)
    assert decision == Decision(Delivery.Status.PENDING, deadline - LAST_TRY_MARGIN)


def test_a_backoff_landing_exactly_on_the_latest_start_is_pulled_in() -> None:
    # retry_at == deadline - guard: a call starting then could land after the end.
    deadline = NOW + STEP
    decision = retry_decision("transient", 1, deadline, NOW)
    assert decision.retry_at == deadline - LAST_TRY_MARGIN


def test_the_end_guard_moves_the_latest_start() -> None:
    deadline = NOW + timedelta(seconds=30)
    guard = timedelta(seconds=25)  # latest start NOW + 5 s: the 10 s backoff overshoots
    decision = retry_decision("transient", 1, deadline, NOW, guard=guard)
    assert decision == Decision(Delivery.Status.PENDING, deadline - guard - LAST_TRY_MARGIN)


def test_no_time_left_expires() -> None:
    # The last try would start exactly now: too late, expired rather than a call now.
    deadline = NOW + LAST_TRY_MARGIN
    decision = retry_decision("transient", 1, deadline, NOW)
    assert decision.status == Delivery.Status.EXPIRED
    assert decision.reason == "deadline reached"
    # one microsecond more and there is a last try
    later = retry_decision("transient", 1, deadline + timedelta(microseconds=1), NOW)
    assert later.status == Delivery.Status.PENDING


def test_a_lost_answer_follows_the_setting(settings: Any) -> None:
    assert retry_decision("lost", 1, None, NOW).status == Delivery.Status.PENDING
    settings.SENDER_RETRY_ON_LOST_ANSWER = False
    final = retry_decision("lost", 1, None, NOW)
    assert final == Decision(Delivery.Status.FAILED, reason=LOST_ANSWER_FINAL)
    # an ordinary transient failure (nothing went out) is retried whatever the setting
    assert retry_decision("transient", 1, None, NOW).status == Delivery.Status.PENDING


def test_outcome_of_marks_only_transient_lost_answers() -> None:
    def result(outcome: Any, lost: bool) -> SendResult:
        return SendResult(outcome=outcome, status_code=None, duration_ms=1, answer_lost=lost)

    assert outcome_of(result("transient", True)) == "lost"
    assert outcome_of(result("transient", False)) == "transient"
    assert outcome_of(result("ok", True)) == "ok"
    assert outcome_of(result("permanent", True)) == "permanent"


def test_chain_error_says_why_the_chain_ends_then_the_call() -> None:
    ends = Decision(Delivery.Status.FAILED, reason="gave up")
    assert chain_error(ends, "503") == "gave up: 503"
    assert chain_error(ends, "") == "gave up"
    assert chain_error(Decision(Delivery.Status.PENDING), "503") == "503"
    assert chain_error(Decision(Delivery.Status.PENDING), "") == ""
    assert len(chain_error(ends, "x" * 1000)) == 500
