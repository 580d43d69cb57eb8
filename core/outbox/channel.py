"""An outbox channel: which rows, how long a claim lives, how many tries.

Every channel (sender API deliveries of one source, assistance webhooks, incident
notifications) is one `Outbox` value; the claim, record, reclaim and sweep of
`core.outbox.rows` take it as their first argument, so the protocol exists once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings

from core.models import OutboxAttempt, OutboxItem


def _sender_stale_after() -> timedelta:
    # Three call timeouts: a worker still inside its call is never reclaimed.
    return timedelta(seconds=settings.SENDER_TIMEOUT * 3)


def _sweep_grace() -> timedelta:
    return timedelta(seconds=settings.SWEEP_GRACE)


@dataclass(frozen=True)
class Outbox:
    name: str  # the channel, in logs and in the registry
    model: type[OutboxItem]
    attempt_model: type[OutboxAttempt]
    attempt_fk: str  # the attempt model's foreign key to the item ("delivery")
    # Log names: "<item>_attempt", "<items>_reclaimed" and "<item>_id" / "<item>_ids".
    item: str = "delivery"
    items: str = "deliveries"
    id_field: str = "delivery_id"
    # Rows of this channel among the model's (the Delivery source).
    scope: Mapping[str, Any] = field(default_factory=dict)
    # Tries for an item without a deadline; None: SENDER_MAX_ATTEMPTS.
    max_attempts: Callable[[], int | None] = lambda: None
    # A claim older than this belongs to a dead worker.
    stale_after: Callable[[], timedelta] = _sender_stale_after
    # A pending row due for longer than this lost its job.
    grace: Callable[[], timedelta] = _sweep_grace
    select_related: Sequence[str] = ()
    # Fields that tie an item's log lines to its owner (message, request, incident).
    log_fields: Callable[[Any], dict[str, Any]] = lambda item: {}
