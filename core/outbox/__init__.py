"""The outbox: everything the platform sends out, on every channel, one protocol.

A channel is an `Outbox` (core/outbox/channel.py): a concrete `OutboxItem` model and its
`OutboxAttempt` model (core/models.py), the rows it covers, its claim lifetime and its
tries. The channels today:

- the sender API: `core.models.Delivery`, one channel per source (chat messages in
  `chat.services`, mailing in `mailing.dispatch`, the batch path in `core.outbox.batch`);
- signed webhooks: `chat.models.AssistanceWebhook` (`chat.assistance.webhooks`), sent by
  `core.outbox.webhook.webhook_post`;
- email: `escalation.models.IncidentNotification` (`escalation.notifications`), sent by
  `core.outbox.email.email_send`.

Every channel adapter returns a `core.sender.SendResult`, classified once
(`core.sender.status_outcome` for an HTTP status, `error_result` for a call that raised).

The protocol (core/outbox/rows.py), for every channel:

1. `outbox_claim` moves a due `pending` row to `sending` with a fresh claim token, in one
   conditional UPDATE (of two workers, one wins, the other gets None), and writes the
   attempt row (`in_flight`, numbered) in the same transaction. A row past its
   deadline is `expired` instead.
2. The owner calls the channel (outside any transaction: no lock is held over a call).
3. `outbox_record` writes the attempt's outcome on its row and moves the item on, only if
   the claim token still matches: a reclaimed row is not overwritten by a late worker
   (whose attempt row still gets its real outcome: that call did happen).

A worker killed between 1 and 3 leaves the row `sending`; `outbox_sweep` (the one
sweeper, run by each channel's cron job) reclaims it after the channel's `stale_after`
(its in-flight attempt becomes `lost`) and finds pending rows whose job was lost; the
cron job enqueues them again. A sender delivery is sent again with the same msgId,
which the provider treats as the same message.

What follows an attempt is decided in one place, `retry_decision(outcome, attempts,
deadline, now)`:

- a message with a deadline (a mailing's end) is retried with the capped backoff until
  that deadline, whatever the count, and its last try is pulled in before the deadline
  rather than given up early; past it, `expired`;
- a message without one stops after the channel's `max_attempts` (`SENDER_MAX_ATTEMPTS`,
  `ASSISTANCE_WEBHOOK_MAX_ATTEMPTS`, five emails);
- a lost answer (the request went out, no answer came back, or the worker died during
  the call) is retried like any transient failure with `SENDER_RETRY_ON_LOST_ANSWER`
  true (same msgId: the provider's idempotency key decides whether it is a duplicate),
  and is final (`failed`, never called again) with it false.

`delivery_claim`, `delivery_record`, `delivery_reclaim_stale` and `deliveries_overdue` are
the same functions for `Delivery` under their historical names.
"""

from core.outbox.bulk import deliveries_insert, delivery_attempts_insert
from core.outbox.channel import Outbox
from core.outbox.decision import (
    Decision,
    DecisionOutcome,
    chain_error,
    outcome_of,
    retry_decision,
)
from core.outbox.rows import (
    ATTEMPT_IN_FLIGHT,
    ATTEMPT_LOST,
    DELIVERIES,
    Recorded,
    deliveries_overdue,
    delivery_claim,
    delivery_outbox,
    delivery_reclaim_stale,
    delivery_record,
    new_claim_token,
    outbox_claim,
    outbox_overdue,
    outbox_reclaim_stale,
    outbox_record,
    outbox_sweep,
)

__all__ = [
    "ATTEMPT_IN_FLIGHT",
    "ATTEMPT_LOST",
    "DELIVERIES",
    "Decision",
    "DecisionOutcome",
    "Outbox",
    "Recorded",
    "chain_error",
    "deliveries_insert",
    "deliveries_overdue",
    "delivery_attempts_insert",
    "delivery_claim",
    "delivery_outbox",
    "delivery_reclaim_stale",
    "delivery_record",
    "new_claim_token",
    "outbox_claim",
    "outbox_overdue",
    "outbox_reclaim_stale",
    "outbox_record",
    "outbox_sweep",
    "outcome_of",
    "retry_decision",
]
