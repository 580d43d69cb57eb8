"""The one retry decision of the outbox: (outcome, attempts, deadline, now) -> next state.

Every owner (chat delivery, mailing dispatch, assistance webhooks, incident notifications)
asks this function what follows an attempt; see the package docstring for the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from django.conf import settings

from core.models import OutboxStatus
from core.sender import SendResult, backoff_delay

# "lost": transient, but the request went out and its answer never came back.
DecisionOutcome = Literal["ok", "transient", "lost", "permanent"]

LOST_ANSWER_FINAL = "answer lost, not called again (SENDER_RETRY_ON_LOST_ANSWER=false)"
# The last try before a deadline starts at least this long before it.
LAST_TRY_MARGIN = timedelta(seconds=1)


@dataclass(frozen=True)
class Decision:
    status: str  # OutboxStatus value: sent | pending | failed | expired
    retry_at: datetime | None = None  # set with `pending`
    reason: str = ""  # why the chain ends here, when not the call's own error


def outcome_of(result: SendResult) -> DecisionOutcome:
    if result.outcome == "transient" and result.answer_lost:
        return "lost"
    return result.outcome


def retry_decision(
    outcome: DecisionOutcome,
    attempts: int,
    deadline: datetime | None,
    now: datetime,
    *,
    max_attempts: int | None = None,
    guard: timedelta = timedelta(0),
) -> Decision:
    """The next state of a message after attempt number `attempts` ended with `outcome`.

    With a deadline, no call may start later than `deadline - guard` (the mailing's end
    guard), and the count does not matter. Without one, `max_attempts` (default
    `SENDER_MAX_ATTEMPTS`) attempts at most.
    """
    status = OutboxStatus
    if outcome == "ok":
        return Decision(status.SENT)
    if outcome == "permanent":
        return Decision(status.FAILED)
    if outcome == "lost" and not settings.SENDER_RETRY_ON_LOST_ANSWER:
        return Decision(status.FAILED, reason=LOST_ANSWER_FINAL)
    retry_at = now + timedelta(seconds=backoff_delay(attempts))
    if deadline is None:
        limit = settings.SENDER_MAX_ATTEMPTS if max_attempts is None else max_attempts
        if attempts >= limit:
            return Decision(status.FAILED, reason=f"gave up after {attempts} attempts")
        return Decision(status.PENDING, retry_at)
    latest = deadline - guard
    if retry_at >= latest:
        # The backoff overshoots the deadline: one last try just before it, rather
        # than giving up with time left (the sender may be back by then).
        retry_at = latest - LAST_TRY_MARGIN
        if retry_at <= now:
            return Decision(status.EXPIRED, reason="deadline reached")
    return Decision(status.PENDING, retry_at)


def chain_error(decision: Decision, error: str) -> str:
    """`last_error` of a delivery after `decision`: the reason it ends, then the call's."""
    text = f"{decision.reason}: {error}" if decision.reason and error else decision.reason or error
    return text[:500]
