"""Evaluation of trigger batches: how the evaluator is woken, and what it applies.

Ingestion only records a `TriggerBatch` row (`escalation.ingest`); counting it on an
incident happens here, asynchronously and coalesced:

1. After the commit of its batch, a POST pushes a wake-up on `escalation:wake:<org>`
   and sets the flag `escalation:eval:<org>` with SET NX (`kick_commands`); it
   enqueues `triggers_evaluate` only if the flag was not set (`kick_enqueue`).
2. The job applies every unevaluated batch, lingers on the wake list while POSTs keep
   coming (refreshing the flag), then clears the flag and drains once more: a batch
   whose POST saw the flag is committed before that last drain; one committed after
   the clear sets the flag and enqueues the next job.
3. So one job runs per burst, not one per POST, and nothing is left unevaluated: the
   sweeper also re-kicks batches older than a few seconds (`batches_overdue`), e.g.
   after a Redis restart or a killed worker, whose flag expires after FLAG_TTL seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.jobs import QUEUE_ESCALATION, enqueue_now
from core.logging import get_logger
from core.redis import get_redis
from escalation import jobs
from escalation.alerts import incident_alerts_firing, incidents_alerts_resolved
from escalation.incidents import (
    incident_record_occurrences,
    incidents_active_locked,
    incidents_resolve_for_rules,
)
from escalation.models import TriggerBatch

log = get_logger(__name__)

EVALUATE_CHUNK = 500
FLAG_TTL = 10  # seconds; refreshed by the running evaluator
DRAIN_INTERVAL = 0.1  # seconds: the lingering evaluator drains at most this often
KICK_REPLIES = 4  # replies `kick_commands` queues per organization, the flag's last


def flag_key(organization_id: int) -> str:
    """Set while an evaluator of the organization runs (or is enqueued)."""
    return f"escalation:eval:{int(organization_id)}"


def wake_key(organization_id: int) -> str:
    """The list a lingering evaluator blocks on; a POST pushes to it."""
    return f"escalation:wake:{int(organization_id)}"


# --- waking the evaluator ----------------------------------------------------------------


def kick_commands(pipe: Any, organization_ids: list[int]) -> None:
    """Queue each organization's wake-up on `pipe` (KICK_REPLIES replies each)."""
    for organization_id in organization_ids:
        pipe.rpush(wake_key(organization_id), 1)
        pipe.ltrim(wake_key(organization_id), -1, -1)
        pipe.expire(wake_key(organization_id), 60)
        pipe.set(flag_key(organization_id), 1, nx=True, ex=FLAG_TTL)


def kick_enqueue(organization_ids: list[int], replies: list[Any]) -> None:
    """Enqueue an evaluation job where the flag was not set (no evaluator running);
    `replies` are those of `kick_commands` for these organizations."""
    flags = replies[KICK_REPLIES - 1 :: KICK_REPLIES]
    for organization_id, flag_set in zip(organization_ids, flags, strict=True):
        if not flag_set:
            continue
        try:
            enqueue_now(jobs.triggers_evaluate, organization_id, queue=QUEUE_ESCALATION)
        except Exception:
            # Committed; the sweeper evaluates it late rather than never.
            log.exception("trigger_kick_failed", organization_id=organization_id)


def triggers_kick(organization_ids: Iterable[int]) -> None:
    """Wake each organization's evaluator; enqueue a job where none runs. One pipeline.
    Call after the commit of their batches."""
    ids = sorted(set(organization_ids))
    if not ids:
        return
    try:
        pipe = get_redis().pipeline(transaction=False)
        kick_commands(pipe, ids)
        replies = pipe.execute()
    except Exception:
        # Committed; the sweeper evaluates them late rather than never.
        log.exception("trigger_kick_failed", organization_ids=ids)
        return
    kick_enqueue(ids, replies)


def batches_overdue(*, grace: timedelta = timedelta(seconds=10)) -> list[int]:
    """Organizations with batches still unevaluated after `grace` (lost kick)."""
    limit: datetime = timezone.now() - grace
    return sorted(
        set(
            TriggerBatch.objects.filter(
                evaluated_at__isnull=True, received_at__lt=limit
            ).values_list("organization_id", flat=True)[:1000]
        )
    )


# --- the evaluator -------------------------------------------------------------------------


def triggers_evaluate(*, organization_id: int) -> int:
    """Job body: apply every unevaluated batch of the organization, in order, then
    linger while more arrive.

    A forked RQ job costs far more to start than to evaluate a few batches, so the
    evaluator stays up while POSTs keep coming: it blocks on the organization's wake
    list (BLPOP, no polling) for `ESCALATION_EVALUATOR_IDLE` seconds, and returns after
    that much quiet or after `ESCALATION_EVALUATOR_MAX_RUN` seconds (other queues get
    the worker back). While it runs, the flag stands, so POSTs only push a wake-up;
    after it clears the flag it drains once more, for batches whose POST saw the flag.
    Returns the number of batches applied.
    """
    client = get_redis()
    start = time.monotonic()
    total = 0
    while True:
        client.delete(wake_key(organization_id))  # wake-ups so far are covered by this drain
        drained_at = time.monotonic()
        total += _drain(organization_id)
        if time.monotonic() - start > settings.ESCALATION_EVALUATOR_MAX_RUN:
            break
        client.expire(flag_key(organization_id), FLAG_TTL)
        idle = settings.ESCALATION_EVALUATOR_IDLE
        if idle <= 0 or client.blpop([wake_key(organization_id)], timeout=idle) is None:
            break
        # Posts keep coming: let a few accumulate, so the evaluator takes the write lock
        # (on SQLite, the whole database's) a few dozen times a second, not once per post.
        pause = drained_at + DRAIN_INTERVAL - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    client.delete(flag_key(organization_id))
    total += _drain(organization_id)
    return total


def _drain(organization_id: int) -> int:
    """Apply every unevaluated batch now. Batches are taken with SKIP LOCKED
    (PostgreSQL) so two evaluators never apply the same batch; on SQLite write
    transactions are serialized anyway."""
    total = 0
    due = TriggerBatch.objects.filter(organization_id=organization_id, evaluated_at__isnull=True)
    # A plain read first: no write transaction (no write lock) when nothing is due.
    while due.exists():
        with transaction.atomic():
            batches = list(
                TriggerBatch.objects.select_for_update(skip_locked=True)
                .filter(organization_id=organization_id, evaluated_at__isnull=True)
                # What `_apply` reads: not the posted triggers (JSON decoding of every
                # row, while holding the write lock the web process waits for).
                .only("id", "kind", "matched_rules", "received_at", "alerts")
                .order_by("id")[:EVALUATE_CHUNK]
            )
            if not batches:
                break
            _apply(batches)
            TriggerBatch.objects.filter(pk__in=[b.pk for b in batches]).update(
                evaluated_at=timezone.now()
            )
        total += len(batches)
        log.info("triggers_evaluated", organization_id=organization_id, batches=len(batches))
    return total


def _apply(batches: list[TriggerBatch]) -> None:
    """Occurrences are summed per rule between resolves, so a burst of N posts costs
    one incident update per rule, not N. Call inside a transaction."""
    # rule id -> [count, first_at, last_at, {(service, status, fingerprint): last seen}]
    pending: dict[int, list[Any]] = {}

    def flush(rule_ids: Iterable[int]) -> None:
        due = [rule_id for rule_id in rule_ids if rule_id in pending]
        if not due:
            return
        active = incidents_active_locked(rule_ids=due)
        for rule_id in due:
            count, first_at, last_at, alerts = pending.pop(rule_id)
            incident = incident_record_occurrences(
                rule_id=rule_id,
                count=count,
                first_at=first_at,
                last_at=last_at,
                locked=active.get(rule_id),
            )
            if incident is not None and alerts:
                incident_alerts_firing(incident=incident, alerts=alerts)

    for batch in batches:
        if batch.kind == TriggerBatch.Kind.RESOLVED:
            flush(batch.matched_rules)
            if batch.alerts:
                incidents_alerts_resolved(
                    rule_ids=batch.matched_rules,
                    alerts=batch.alerts,
                    at=batch.received_at,
                    reason="alertmanager",
                )
            else:  # no alert identities (recorded before they were kept): as before
                incidents_resolve_for_rules(rule_ids=batch.matched_rules, reason="alertmanager")
            continue
        for rule_id in batch.matched_rules:
            entry = pending.setdefault(rule_id, [0, batch.received_at, batch.received_at, {}])
            entry[0] += 1
            entry[2] = batch.received_at
            for service, status, fingerprint in batch.alerts:
                entry[3][(service, int(status), fingerprint)] = batch.received_at
    flush(sorted(pending))
