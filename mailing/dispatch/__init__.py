"""Batched, concurrent dispatch of a mailing's messages to the external sender.

One dispatch job drives one *lane* of one mailing (`MAILING_LANES` lanes run in
parallel on different workers). A lane (`lane.py`) loops, for up to
`MAILING_SLICE_SECONDS`:

1. claim up to `MAILING_BATCH_SIZE` due `pending` deliveries of the mailing in one
   short transaction (`batch.claim` on `core.outbox.batch.claim_many`: `SELECT ...
   FOR UPDATE SKIP LOCKED` on PostgreSQL, then one conditional UPDATE to `sending`
   with a fresh claim token, and the `in_flight` attempt rows); clients outside their
   sending window are given back (`release_many`: refunded, attempt row deleted);
2. send them with bounded concurrency (`mailing.transport.SenderPool` under
   asyncio, in a thread of its own), with no transaction open;
3. record every attempt and every new status in one short transaction
   (`batch.record` on `core.outbox.batch.record_many`: each attempt row's outcome in
   one bulk UPDATE, one UPDATE per outcome, fenced by the claim token);

then re-enqueues itself (now, or at the next due retry / window opening). A lane
holds a Redis lease (`lease.py`) while it runs; if its worker dies, the lease
expires, the cron sweeper (`sweep.py`) reclaims the stale `sending` rows (same
msgId, so a resend is harmless; their `in_flight` attempts become `lost`) and enqueues
the lane again.

A circuit breaker per transport, shared by all lanes (`breaker.py`, Redis), stops that
transport's dispatch when its messages of a batch fail mostly with transient errors:
they go back to `pending` with their attempt refunded (the attempt rows are still
recorded), the breaker stays open for an exponentially growing, jittered delay, and
then a small probe batch decides whether to close it. Meanwhile lanes claim only the
other transports' messages (an SMTP outage does not stop SMS, nor the other way round).

Lifecycle transitions are not made here: starting and finishing a mailing belong
to `mailing.services.lifecycle`, which the lanes and the sweeper call.
"""

from mailing.dispatch.batch import BatchOutcome, Row, claim, end_guard, record, send_all
from mailing.dispatch.breaker import (
    BREAKER_KEYS,
    CLOSED,
    Breaker,
    breaker_key,
    breaker_state,
    breaker_states,
)
from mailing.dispatch.lane import mailing_dispatch, open_sender
from mailing.dispatch.lease import lane_key, lease_ttl
from mailing.dispatch.progress import expire_remaining
from mailing.dispatch.sweep import mailing_sweep
from mailing.queues import mailing_queue

__all__ = [
    "BREAKER_KEYS",
    "CLOSED",
    "BatchOutcome",
    "Breaker",
    "Row",
    "breaker_key",
    "breaker_state",
    "breaker_states",
    "claim",
    "end_guard",
    "expire_remaining",
    "lane_key",
    "lease_ttl",
    "mailing_dispatch",
    "mailing_queue",
    "mailing_sweep",
    "open_sender",
    "record",
    "send_all",
]
