"""Writes on Delivery rows: claim, record an attempt, reclaim the abandoned.

The protocol, for any owner (chat message, mailing, escalation warning):

1. `delivery_claim` moves a due `pending` row to `sending` with a fresh claim token,
   in one conditional UPDATE: of two workers, one wins, the other gets None.
2. The owner calls the sender (outside any transaction: no lock is held over HTTP).
3. `delivery_record` writes the attempt and the outcome, only if the claim token
   still matches (a reclaimed row is not overwritten by a late worker).

A worker killed between 1 and 3 leaves the row `sending`; `delivery_reclaim_stale`
puts it back to `pending` and the owner re-enqueues it. It is sent again with the
same msgId, which the provider treats as the same message.

What follows a failed attempt is decided in one place, `retry_decision(outcome,
attempts, deadline, now)`, for every owner (chat, mailing dispatch, assistance
webhooks, incident notifications):

- a message with a deadline (a mailing's end, a notification's TTL) is retried with
  the capped backoff until that deadline, whatever the count, and its last try is
  pulled in before the deadline rather than given up early; past it, `expired`;
- a message without one stops after `SENDER_MAX_ATTEMPTS` (or the owner's count);
- a lost answer (the request went out, no answer came back, or the worker died during
  the call) is retried like any transient failure with `SENDER_RETRY_ON_LOST_ANSWER`
  true (same msgId: the provider's idempotency key decides whether it is a duplicate),
  and is final (`failed`, never called again) with it false.
"""

from core.outbox.decision import (
    Decision,
    DecisionOutcome,
    chain_error,
    outcome_of,
    retry_decision,
)
from core.outbox.rows import (
    Recorded,
    deliveries_insert,
    deliveries_overdue,
    delivery_attempts_insert,
    delivery_claim,
    delivery_reclaim_stale,
    delivery_record,
    new_claim_token,
)

__all__ = [
    "Decision",
    "DecisionOutcome",
    "Recorded",
    "chain_error",
    "deliveries_insert",
    "deliveries_overdue",
    "delivery_attempts_insert",
    "delivery_claim",
    "delivery_reclaim_stale",
    "delivery_record",
    "new_claim_token",
    "outcome_of",
    "retry_decision",
]
