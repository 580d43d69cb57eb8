"""Trigger ingestion: validate, match, record one row, kick the evaluator. Nothing else.

Matching (seed semantics, order-insensitive): a POST is a set of (service, status)
pairs; a rule matches when its whole trigger set is contained in that set, and
then the POST counts as ONE occurrence for the rule. Posted pairs that belong to no
matched rule are returned as `unmatched` (and stored on the batch).

Alertmanager: firing alerts form one such set; resolved alerts resolve the active
incident of every rule that contains one of their pairs.

Evaluation is asynchronous and coalesced: after commit, the POST pushes a wake-up
on `escalation:wake:<org>` and sets the flag `escalation:eval:<org>` with SET NX; it
enqueues `triggers_evaluate` only if the flag was not set. The job applies every
unevaluated batch, lingers on the wake list while POSTs keep coming, then clears the
flag and drains once more: a batch whose POST saw the flag is committed before that
last drain; one committed after the clear sets the flag and enqueues the next job.
So one job runs per burst, not one per POST, and nothing is left unevaluated (the
sweeper also re-kicks batches older than a few seconds, e.g. after a Redis restart
or a killed worker, whose flag expires after FLAG_TTL seconds).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.jobs import QUEUE_ESCALATION, enqueue_now
from core.logging import get_logger
from core.models import Organization
from core.redis import get_redis
from escalation.models import Rule, TriggerBatch

log = get_logger(__name__)

Pair = tuple[str, int]
EVALUATE_CHUNK = 500


def _flag(organization_id: int) -> str:
    return f"escalation:eval:{int(organization_id)}"


@dataclass(frozen=True)
class Ingested:
    batch: TriggerBatch
    matched: list[dict[str, Any]]  # [{"rule": code, "triggers": [...]}]
    unmatched: list[dict[str, Any]]


def _pairs_json(pairs: Iterable[Pair]) -> list[dict[str, Any]]:
    return [{"service": s, "status": c} for s, c in sorted(set(pairs))]


CompiledRules = list[tuple[int, str, frozenset[Pair]]]
# Per-process cache of each organization's active rules, keyed by a version token
# kept in Redis: one Redis GET per POST instead of a database query. Any rule
# change replaces the token after commit (`rules_changed_on_commit`); a token lost
# in a Redis restart is re-created, which also invalidates every process's copy.
_RULES_CACHE: dict[int, tuple[Any, CompiledRules]] = {}


def _rules_version_key(organization_id: int) -> str:
    return f"escalation:rules:{int(organization_id)}"


def _rules(organization: Organization) -> CompiledRules:
    client = get_redis()
    key = _rules_version_key(organization.pk)
    token = client.get(key)
    if token is None:
        client.set(key, secrets.token_hex(8), nx=True)
        token = client.get(key)
    cached = _RULES_CACHE.get(organization.pk)
    if cached is not None and token is not None and cached[0] == token:
        return cached[1]
    rules = [
        (pk, code, frozenset((t["service"], int(t["status"])) for t in triggers))
        for pk, code, triggers in Rule.objects.filter(
            organization=organization, is_active=True
        ).values_list("pk", "code", "triggers")
    ]
    if token is not None:
        _RULES_CACHE[organization.pk] = (token, rules)
    return rules


def rules_changed_on_commit(organization_id: int) -> None:
    """Invalidate every web process's cached rules of the organization, after commit."""

    def _bump() -> None:
        try:
            get_redis().set(_rules_version_key(organization_id), secrets.token_hex(8))
        except Exception:
            log.exception("rules_version_bump_failed", organization_id=organization_id)

    transaction.on_commit(_bump)


def _wake(organization_id: int) -> str:
    return f"escalation:wake:{int(organization_id)}"


FLAG_TTL = 10  # seconds; refreshed by the running evaluator


def _kick_on_commit(organization_id: int) -> None:
    def _kick() -> None:
        try:
            pipe = get_redis().pipeline(transaction=False)
            pipe.rpush(_wake(organization_id), 1)
            pipe.ltrim(_wake(organization_id), -1, -1)
            pipe.expire(_wake(organization_id), 60)
            pipe.set(_flag(organization_id), 1, nx=True, ex=FLAG_TTL)
            if pipe.execute()[-1]:
                from escalation.jobs import triggers_evaluate

                enqueue_now(triggers_evaluate, organization_id, queue=QUEUE_ESCALATION)
        except Exception:
            # Committed; the sweeper evaluates it late rather than never.
            log.exception("trigger_kick_failed", organization_id=organization_id)

    transaction.on_commit(_kick)


@transaction.atomic
def triggers_ingest(
    *,
    organization: Organization,
    source: str,
    firing: list[Pair],
    resolved: list[Pair] | None = None,
) -> list[Ingested]:
    """Record a monitoring post (one batch per kind present) and return what matched."""
    rules = _rules(organization)
    now = timezone.now()
    results = []
    for kind, pairs in ((TriggerBatch.Kind.FIRING, firing), (TriggerBatch.Kind.RESOLVED, resolved)):
        if not pairs:
            continue
        posted = set(pairs)
        if kind == TriggerBatch.Kind.FIRING:
            hits = [(pk, code, ts) for pk, code, ts in rules if ts and ts <= posted]
            covered: set[Pair] = set().union(*(ts for _, _, ts in hits)) if hits else set()
        else:
            hits = [(pk, code, ts) for pk, code, ts in rules if ts & posted]
            covered = set().union(*(ts & posted for _, _, ts in hits)) if hits else set()
        unmatched = _pairs_json(posted - covered)
        batch = TriggerBatch.objects.create(
            organization=organization,
            source=source,
            kind=kind,
            triggers=[[s, c] for s, c in pairs],
            matched_rules=[pk for pk, _, _ in hits],
            unmatched=unmatched,
            received_at=now,
            evaluated_at=None if hits else now,
        )
        results.append(
            Ingested(
                batch=batch,
                matched=[{"rule": code, "triggers": _pairs_json(ts)} for _, code, ts in hits],
                unmatched=unmatched,
            )
        )
        if hits:
            _kick_on_commit(organization.pk)
        if unmatched:
            log.info(
                "triggers_unmatched",
                organization_id=organization.pk,
                batch_id=batch.pk,
                count=len(unmatched),
            )
    return results


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
        client.delete(_wake(organization_id))  # wake-ups so far are covered by this drain
        total += _drain(organization_id)
        if time.monotonic() - start > settings.ESCALATION_EVALUATOR_MAX_RUN:
            break
        client.expire(_flag(organization_id), FLAG_TTL)
        idle = settings.ESCALATION_EVALUATOR_IDLE
        if idle <= 0 or client.blpop([_wake(organization_id)], timeout=idle) is None:
            break
    client.delete(_flag(organization_id))
    total += _drain(organization_id)
    return total


def _drain(organization_id: int) -> int:
    """Apply every unevaluated batch now. Batches are taken with SKIP LOCKED
    (PostgreSQL) so two evaluators never apply the same batch; on SQLite write
    transactions are serialized anyway."""
    total = 0
    while True:
        with transaction.atomic():
            batches = list(
                TriggerBatch.objects.select_for_update(skip_locked=True)
                .filter(organization_id=organization_id, evaluated_at__isnull=True)
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
    from escalation.services import (
        incident_record_occurrences,
        incidents_active_locked,
        incidents_resolve_for_rules,
    )

    pending: dict[int, list[Any]] = {}  # rule id -> [count, first_at, last_at]

    def flush(rule_ids: Iterable[int]) -> None:
        due = [rule_id for rule_id in rule_ids if rule_id in pending]
        if not due:
            return
        active = incidents_active_locked(rule_ids=due)
        for rule_id in due:
            count, first_at, last_at = pending.pop(rule_id)
            incident_record_occurrences(
                rule_id=rule_id,
                count=count,
                first_at=first_at,
                last_at=last_at,
                locked=active.get(rule_id),
            )

    for batch in batches:
        if batch.kind == TriggerBatch.Kind.RESOLVED:
            flush(batch.matched_rules)
            incidents_resolve_for_rules(rule_ids=batch.matched_rules, reason="alertmanager")
            continue
        for rule_id in batch.matched_rules:
            entry = pending.setdefault(rule_id, [0, batch.received_at, batch.received_at])
            entry[0] += 1
            entry[2] = batch.received_at
    flush(sorted(pending))


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
