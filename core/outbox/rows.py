"""Outbox rows of any channel: claim, record an attempt, reclaim the abandoned, find the
overdue (see `core.outbox` for the protocol). Each function takes the channel's `Outbox`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.logging import get_logger
from core.models import Delivery, DeliveryAttempt, OutboxAttemptOutcome, OutboxItem, OutboxStatus
from core.outbox.channel import Outbox
from core.outbox.decision import LOST_ANSWER_FINAL, chain_error, outcome_of, retry_decision
from core.sender import SendResult

log = get_logger(__name__)

# The attempt row written with the claim, before the call, and what a reclaim makes of it.
ATTEMPT_IN_FLIGHT = "in flight: no outcome yet"
ATTEMPT_LOST = "no outcome: the worker stopped during the call"

# The sender API's deliveries (core.models.Delivery); `delivery_outbox` scopes it to a source.
DELIVERIES = Outbox(
    name="deliveries",
    model=Delivery,
    attempt_model=DeliveryAttempt,
    attempt_fk="delivery",
    log_fields=lambda delivery: {"source": delivery.source},
)


def delivery_outbox(source: str) -> Outbox:
    return replace(DELIVERIES, name=f"{source}_deliveries", scope={"source": source})


def new_claim_token() -> str:
    return secrets.token_hex(8)


def outbox_claim(
    outbox: Outbox, *, item_id: int, token: str, now: datetime | None = None
) -> Any | None:
    """Claim a due pending item for one attempt: None if it is not due, not pending
    (sent, claimed by another worker) or past its deadline (then it is `expired`).

    The claim and its attempt row (`in_flight`) are written in one transaction, so
    attempt numbers have no gap even if the worker dies during the call.
    """
    now = now or timezone.now()
    rows = outbox.model._default_manager.filter(pk=item_id, **outbox.scope)
    with transaction.atomic():
        expired = rows.filter(status=OutboxStatus.PENDING, deadline__lte=now).update(
            status=OutboxStatus.EXPIRED, last_error="deadline passed", updated_at=now
        )
        if expired:
            log.info(f"{outbox.item}_expired", **{outbox.id_field: item_id})
            return None
        claimed = (
            rows.filter(status=OutboxStatus.PENDING)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .update(
                status=OutboxStatus.SENDING,
                claim_token=token,
                claimed_at=now,
                attempts=F("attempts") + 1,
                updated_at=now,
            )
        )
        if not claimed:
            return None
        item = outbox.model._default_manager.select_related(*outbox.select_related).get(pk=item_id)
        outbox.attempt_model._default_manager.create(
            **{f"{outbox.attempt_fk}_id": item_id},
            number=item.attempts,
            outcome=OutboxAttemptOutcome.IN_FLIGHT,
            duration_ms=0,
            error=ATTEMPT_IN_FLIGHT,
        )
    return item


@dataclass(frozen=True)
class Recorded:
    status: str  # the item's status after this attempt
    retry_at: datetime | None  # set when the item goes back to pending
    applied: bool  # False when the claim was lost (reclaimed meanwhile)


def outbox_record(outbox: Outbox, *, item: OutboxItem, token: str, result: SendResult) -> Recorded:
    """Record the attempt of `item` (as claimed) and move it on, as `retry_decision`
    says, only if `token` still holds the claim. The attempt row is written either way:
    a late worker's call did happen. Call inside a transaction."""
    now = timezone.now()
    decision = retry_decision(
        outcome_of(result),
        item.attempts,
        item.deadline,
        now,
        max_attempts=outbox.max_attempts(),
    )
    status, retry_at = decision.status, decision.retry_at
    updated = outbox.model._default_manager.filter(
        pk=item.pk, status=OutboxStatus.SENDING, claim_token=token
    ).update(
        status=status,
        next_attempt_at=retry_at,
        last_error=chain_error(decision, result.error),
        sent_at=now if status == OutboxStatus.SENT else None,
        claim_token="",
        updated_at=now,
    )
    outcome = {
        "outcome": result.outcome,
        "status_code": result.status_code,
        "duration_ms": result.duration_ms,
        "error": result.error[:500],
    }
    fk = f"{outbox.attempt_fk}_id"
    attempts = outbox.attempt_model._default_manager.filter(
        **{fk: item.pk, "number": item.attempts}
    )
    if not attempts.update(**outcome):  # claimed by hand (tests, older rows): no row yet
        outbox.attempt_model._default_manager.create(
            **{fk: item.pk}, number=item.attempts, **outcome
        )
    log.info(
        f"{outbox.item}_attempt",
        **{outbox.id_field: item.pk},
        **outbox.log_fields(item),
        attempt=item.attempts,
        outcome=result.outcome,
        answer_lost=result.answer_lost or None,
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        new_status=status if updated else "unchanged",
        error=result.error or None,
    )
    return Recorded(status=status, retry_at=retry_at, applied=bool(updated))


@transaction.atomic
def outbox_reclaim_stale(outbox: Outbox, *, older_than: timedelta | None = None) -> list[int]:
    """Put items abandoned in `sending` back to `pending`; their in-flight attempt
    becomes `lost`. Returns their ids (at most 1000 a call).

    A worker that died during the call lost its answer: with
    `SENDER_RETRY_ON_LOST_ANSWER` false they are failed instead (never called again),
    and their ids are returned all the same, so the owner brings its own state along.
    Rows locked by another sweeper are skipped: each is reclaimed once.
    """
    now = timezone.now()
    limit = now - (older_than or outbox.stale_after())
    stale = list(
        outbox.model._default_manager.select_for_update(skip_locked=True)
        .filter(status=OutboxStatus.SENDING, claimed_at__lt=limit, **outbox.scope)
        .values_list("pk", flat=True)[:1000]
    )
    if not stale:
        return stale
    outbox.attempt_model._default_manager.filter(
        **{f"{outbox.attempt_fk}_id__in": stale}, outcome=OutboxAttemptOutcome.IN_FLIGHT
    ).update(outcome=OutboxAttemptOutcome.LOST, error=ATTEMPT_LOST)
    rows = outbox.model._default_manager.filter(pk__in=stale, status=OutboxStatus.SENDING)
    # Every id (at most 1000), so grepping an item's id finds its reclaim.
    ids = {f"{outbox.item}_ids": stale}
    if not settings.SENDER_RETRY_ON_LOST_ANSWER:
        rows.update(
            status=OutboxStatus.FAILED,
            claim_token="",
            next_attempt_at=None,
            last_error=f"{LOST_ANSWER_FINAL}: the worker stopped during the call",
            updated_at=now,
        )
        log.warning(f"{outbox.items}_abandoned", **outbox.scope, count=len(stale), **ids)
    else:
        rows.update(
            status=OutboxStatus.PENDING, claim_token="", next_attempt_at=None, updated_at=now
        )
        log.warning(f"{outbox.items}_reclaimed", **outbox.scope, count=len(stale), **ids)
    return stale


def outbox_overdue(outbox: Outbox, *, grace: timedelta | None = None) -> list[int]:
    """Pending items whose try is overdue by more than `grace` (the channel's unless
    given): their job was lost (a Redis restart, say)."""
    limit = timezone.now() - (outbox.grace() if grace is None else grace)
    return list(
        outbox.model._default_manager.filter(status=OutboxStatus.PENDING, **outbox.scope)
        .filter(
            Q(next_attempt_at__lt=limit) | Q(next_attempt_at__isnull=True, created_at__lt=limit)
        )
        .values_list("pk", flat=True)[:1000]
    )


def outbox_sweep(outbox: Outbox, *, grace: timedelta | None = None) -> list[int]:
    """The one sweeper, for any channel: reclaim stale claims, then find the overdue.
    Returns the item ids to send again (the channel's cron job enqueues them)."""
    reclaimed = outbox_reclaim_stale(outbox)
    seen = set(reclaimed)
    return reclaimed + [pk for pk in outbox_overdue(outbox, grace=grace) if pk not in seen]


# --- the sender's deliveries, by their historical names (chat, mailing, the bench) ------


def delivery_claim(*, delivery_id: int, token: str, now: datetime | None = None) -> Delivery | None:
    claimed: Delivery | None = outbox_claim(DELIVERIES, item_id=delivery_id, token=token, now=now)
    return claimed


def delivery_record(*, delivery: Delivery, token: str, result: SendResult) -> Recorded:
    """Record one attempt and move the delivery on. Call inside a transaction."""
    return outbox_record(DELIVERIES, item=delivery, token=token, result=result)


def delivery_reclaim_stale(*, source: str, older_than: timedelta | None = None) -> list[int]:
    return outbox_reclaim_stale(delivery_outbox(source), older_than=older_than)


def deliveries_overdue(*, source: str, grace: timedelta | None = None) -> list[int]:
    return outbox_overdue(delivery_outbox(source), grace=grace)
