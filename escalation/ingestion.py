"""Trigger ingestion: validate, match, record one row, kick the evaluator. Nothing else.

Matching (seed semantics, order-insensitive): a POST is a set of (service, status)
pairs; a rule matches when its whole trigger set is contained in that set, and
then the POST counts as ONE occurrence for the rule. Posted pairs that belong to no
matched rule are returned as `unmatched` (and stored on the batch).

Alertmanager: firing alerts form one such set; resolved alerts resolve the active
incident of every rule that contains one of their pairs, once none of the alerts
behind that incident is still firing (escalation/alerts.py: alerts are told apart by
fingerprint, so one instance recovering does not resolve what another still fires).

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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.jobs import QUEUE_ESCALATION, enqueue_now
from core.logging import get_logger
from core.models import Organization
from core.redis import get_redis
from escalation.alerts import batch_alerts
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
    unmatched: list[dict[str, Any]]  # posted pairs in no matched rule
    ignored: list[dict[str, Any]] = field(default_factory=list)  # unmappable alerts


@dataclass(frozen=True)
class Post:
    """One monitoring post, validated: what `triggers_ingest_many` records.

    `ignored` are Alertmanager alerts whose labels map to no (service, status) pair:
    `{"alert": index, "labels": {...}, "reason": "...", "status": "firing"|"resolved"}`.
    They are recorded too (in `unmatched` of the batch of their status), never dropped.
    """

    organization_id: int
    source: str
    firing: list[Pair]
    resolved: list[Pair] = field(default_factory=list)
    ignored: list[dict[str, Any]] = field(default_factory=list)
    received_at: datetime | None = None
    # Alertmanager: {"firing": [...], "resolved": [...]}, the fingerprint of each pair of
    # `firing` / `resolved`, in the same order (escalation.alerts.alert_fingerprint).
    fingerprints: dict[str, list[str]] = field(default_factory=dict)


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


def _rules_many(
    organization_ids: Iterable[int], *, wake: Iterable[int] = ()
) -> dict[int, CompiledRules]:
    """The active rules of each organization: one Redis round trip for the version
    tokens, a database query only for an organization whose token changed. `wake`:
    organizations whose committed batches still need `triggers_kick`, sent in the same
    round trip (the group commit's previous transaction)."""
    ids = sorted(set(organization_ids))
    woken = sorted(set(wake))
    client = get_redis()
    pipe = client.pipeline(transaction=False)
    _kick_commands(pipe, woken)
    for organization_id in ids:
        pipe.get(_rules_version_key(organization_id))
    replies = pipe.execute()
    _kick_enqueue(woken, replies[: 4 * len(woken)])
    tokens = dict(zip(ids, replies[4 * len(woken) :], strict=True))
    out: dict[int, CompiledRules] = {}
    for organization_id, token in tokens.items():
        if token is None:
            key = _rules_version_key(organization_id)
            client.set(key, secrets.token_hex(8), nx=True)
            token = client.get(key)
        cached = _RULES_CACHE.get(organization_id)
        if cached is not None and token is not None and cached[0] == token:
            out[organization_id] = cached[1]
            continue
        rules = [
            (pk, code, frozenset((t["service"], int(t["status"])) for t in triggers))
            for pk, code, triggers in Rule.objects.filter(
                organization_id=organization_id, is_active=True
            ).values_list("pk", "code", "triggers")
        ]
        if token is not None:
            _RULES_CACHE[organization_id] = (token, rules)
        out[organization_id] = rules
    return out


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
DRAIN_INTERVAL = 0.1  # seconds: the lingering evaluator drains at most this often


def _kick_commands(pipe: Any, organization_ids: list[int]) -> None:
    for organization_id in organization_ids:  # 4 replies each, the flag's last
        pipe.rpush(_wake(organization_id), 1)
        pipe.ltrim(_wake(organization_id), -1, -1)
        pipe.expire(_wake(organization_id), 60)
        pipe.set(_flag(organization_id), 1, nx=True, ex=FLAG_TTL)


def _kick_enqueue(organization_ids: list[int], replies: list[Any]) -> None:
    """Enqueue an evaluation job where the flag was not set (no evaluator running)."""
    from escalation.jobs import triggers_evaluate

    for organization_id, flag_set in zip(organization_ids, replies[3::4], strict=True):
        if not flag_set:
            continue
        try:
            enqueue_now(triggers_evaluate, organization_id, queue=QUEUE_ESCALATION)
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
        _kick_commands(pipe, ids)
        replies = pipe.execute()
    except Exception:
        # Committed; the sweeper evaluates them late rather than never.
        log.exception("trigger_kick_failed", organization_ids=ids)
        return
    _kick_enqueue(ids, replies)


def _plan(post: Post, rules: CompiledRules, now: datetime) -> list[Ingested]:
    """The batches of one post (one per kind present), unsaved, and what matched."""
    out = []
    received_at = post.received_at or now
    for kind, pairs in (
        (TriggerBatch.Kind.FIRING, post.firing),
        (TriggerBatch.Kind.RESOLVED, post.resolved),
    ):
        ignored = [
            {k: v for k, v in entry.items() if k != "status"}
            for entry in post.ignored
            if entry["status"] == kind
        ]
        if not pairs and not ignored:
            continue
        posted = set(pairs)
        if kind == TriggerBatch.Kind.FIRING:
            hits = [(pk, code, ts) for pk, code, ts in rules if ts and ts <= posted]
            covered: set[Pair] = set().union(*(ts for _, _, ts in hits)) if hits else set()
        else:
            hits = [(pk, code, ts) for pk, code, ts in rules if ts & posted]
            covered = set().union(*(ts & posted for _, _, ts in hits)) if hits else set()
        unmatched = _pairs_json(posted - covered)
        batch = TriggerBatch(
            organization_id=post.organization_id,
            source=post.source,
            kind=kind,
            triggers=[[s, c] for s, c in pairs],
            alerts=batch_alerts(pairs, post.fingerprints.get(kind, [])),
            matched_rules=[pk for pk, _, _ in hits],
            # Unmappable alerts are unmatched too: stored with their labels and reason.
            unmatched=unmatched + ignored,
            received_at=received_at,
            evaluated_at=None if hits else now,
        )
        out.append(
            Ingested(
                batch=batch,
                matched=[{"rule": code, "triggers": _pairs_json(ts)} for _, code, ts in hits],
                unmatched=unmatched,
                ignored=ignored,
            )
        )
    return out


def _log_unmatched(results: Iterable[Ingested]) -> None:
    for r in results:
        if r.unmatched or r.ignored:
            log.info(
                "triggers_unmatched",
                organization_id=r.batch.organization_id,
                batch_id=r.batch.pk,
                count=len(r.unmatched),
                ignored=len(r.ignored),
            )


def triggers_ingest(
    *,
    organization: Organization,
    source: str,
    firing: list[Pair],
    resolved: list[Pair] | None = None,
    ignored: list[dict[str, Any]] | None = None,
    fingerprints: dict[str, list[str]] | None = None,
) -> list[Ingested]:
    """Record a monitoring post (one batch per kind present) and return what matched."""
    post = Post(
        organization_id=organization.pk,
        source=source,
        firing=firing,
        resolved=resolved or [],
        ignored=ignored or [],
        fingerprints=fingerprints or {},
    )
    return triggers_ingest_many([post])[0]


def triggers_ingest_many(
    posts: list[Post], *, kick: bool = True, wake: Iterable[int] = ()
) -> list[list[Ingested]]:
    """Record several posts in ONE transaction (group commit) and return, per post,
    what matched. The rules are read before the transaction (cached, one Redis round
    trip), so the write lock is held only for the INSERT; after commit one Redis
    pipeline wakes the evaluators. With `kick=False` the caller wakes them itself after
    the commit: with `triggers_kick`, or by passing the organizations as `wake` to its
    next call (sent in the rules' round trip). Either every post is recorded or none
    (an error propagates and nothing was committed)."""
    if not posts:
        triggers_kick(wake)
        return []
    rules = _rules_many((p.organization_id for p in posts), wake=wake)
    now = timezone.now()
    planned = [_plan(post, rules[post.organization_id], now) for post in posts]
    batches = [r.batch for results in planned for r in results]
    with transaction.atomic():
        _insert(batches)
        due = {r.batch.organization_id for results in planned for r in results if r.matched}
        if due and kick:
            transaction.on_commit(lambda: triggers_kick(due))
    for results in planned:
        _log_unmatched(results)
    return planned


_INSERT_FIELDS = (
    "organization_id",
    "source",
    "kind",
    "triggers",
    "alerts",
    "matched_rules",
    "unmatched",
    "received_at",
    "evaluated_at",
)
_INSERT_CHUNK = 100


def _insert(batches: list[TriggerBatch]) -> None:
    """`bulk_create` without the ORM's per-field machinery (a few times cheaper for
    these small rows; values adapted by the backend's own `adapt_*_value`). Sets the
    primary keys from RETURNING, as `bulk_create` does."""
    if not connection.features.can_return_rows_from_bulk_insert:
        TriggerBatch.objects.bulk_create(batches)
        return
    ops = connection.ops
    table = ops.quote_name(TriggerBatch._meta.db_table)
    columns = ", ".join(ops.quote_name(c) for c in _INSERT_FIELDS)
    row = "(" + ", ".join(["%s"] * len(_INSERT_FIELDS)) + ")"
    pk = ops.quote_name("id")
    for start in range(0, len(batches), _INSERT_CHUNK):
        chunk = batches[start : start + _INSERT_CHUNK]
        params: list[Any] = []
        for b in chunk:
            params += (
                b.organization_id,
                b.source,
                b.kind,
                ops.adapt_json_value(b.triggers, None),
                ops.adapt_json_value(b.alerts, None),
                ops.adapt_json_value(b.matched_rules, None),
                ops.adapt_json_value(b.unmatched, None),
                ops.adapt_datetimefield_value(b.received_at),
                ops.adapt_datetimefield_value(b.evaluated_at),
            )
        sql = (
            f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * len(chunk))} RETURNING {pk}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            ids = [r[0] for r in cursor.fetchall()]
        for b, new_id in zip(chunk, ids, strict=True):
            b.pk = new_id
            b._state.adding = False
            b._state.db = connection.alias


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
        drained_at = time.monotonic()
        total += _drain(organization_id)
        if time.monotonic() - start > settings.ESCALATION_EVALUATOR_MAX_RUN:
            break
        client.expire(_flag(organization_id), FLAG_TTL)
        idle = settings.ESCALATION_EVALUATOR_IDLE
        if idle <= 0 or client.blpop([_wake(organization_id)], timeout=idle) is None:
            break
        # Posts keep coming: let a few accumulate, so the evaluator takes the write lock
        # (on SQLite, the whole database's) a few dozen times a second, not once per post.
        pause = drained_at + DRAIN_INTERVAL - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    client.delete(_flag(organization_id))
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
    from escalation.alerts import incident_alerts_firing, incidents_alerts_resolved
    from escalation.services import (
        incident_record_occurrences,
        incidents_active_locked,
        incidents_resolve_for_rules,
    )

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
