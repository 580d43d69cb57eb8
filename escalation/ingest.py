"""Trigger ingestion: match a validated post against the rules, record one row per kind,
wake the evaluator. Nothing else (counting happens in `escalation.evaluate`).

Matching (seed semantics, order-insensitive): a post is a set of (service, status)
pairs; a rule matches when its whole trigger set is contained in that set, and then
the post counts as ONE occurrence for the rule. Posted pairs that belong to no matched
rule are returned as `unmatched` (and stored on the batch).

Alertmanager: firing alerts form one such set; resolved alerts resolve the active
incident of every rule that contains one of their pairs, once none of the alerts
behind that incident is still firing (escalation/alerts.py: alerts are told apart by
fingerprint, so one instance recovering does not resolve what another still fires).

`triggers_ingest_many` records several posts in one transaction (the fast path's group
commit, `escalation.group_commit`); the DRF views record one post with
`triggers_ingest`. Payloads are parsed before (`escalation.payloads`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from core.logging import get_logger
from core.models import Organization
from core.redis import get_redis
from escalation.alerts import batch_alerts
from escalation.evaluate import KICK_REPLIES, kick_commands, kick_enqueue, triggers_kick
from escalation.models import TriggerBatch
from escalation.rules import CompiledRules, Pair, rules_compiled, rules_version_commands

log = get_logger(__name__)


@dataclass(frozen=True)
class Payload:
    """A monitoring post, parsed (`escalation.payloads`), not yet tied to an organization.

    `ignored` are Alertmanager alerts whose labels map to no (service, status) pair:
    `{"alert": index, "labels": {...}, "reason": "...", "status": "firing"|"resolved"}`.
    They are recorded too (in `unmatched` of the batch of their status), never dropped.
    `fingerprints` (Alertmanager): {"firing": [...], "resolved": [...]}, the identity of
    each pair of `firing` / `resolved`, in the same order (escalation.alerts).
    """

    source: str
    firing: list[Pair]
    resolved: list[Pair] = field(default_factory=list)
    ignored: list[dict[str, Any]] = field(default_factory=list)
    fingerprints: dict[str, list[str]] = field(default_factory=dict)

    @property
    def received(self) -> int:
        return len(self.firing) + len(self.resolved)


@dataclass(frozen=True)
class Post:
    """One monitoring post of an organization: what `triggers_ingest_many` records."""

    organization_id: int
    payload: Payload
    received_at: datetime | None = None


@dataclass(frozen=True)
class Ingested:
    batch: TriggerBatch
    matched: list[dict[str, Any]]  # [{"rule": code, "triggers": [...]}]
    unmatched: list[dict[str, Any]]  # posted pairs in no matched rule
    ignored: list[dict[str, Any]] = field(default_factory=list)  # unmappable alerts


def _pairs_json(pairs: Iterable[Pair]) -> list[dict[str, Any]]:
    return [{"service": s, "status": c} for s, c in sorted(set(pairs))]


def _rules_many(
    organization_ids: Iterable[int], *, wake: Iterable[int] = ()
) -> dict[int, CompiledRules]:
    """The active rules of each organization: one Redis round trip for the version
    tokens (`escalation.rules`). `wake`: organizations whose committed batches still
    need their evaluator woken, sent in the same round trip (the group commit's
    previous transaction)."""
    ids = sorted(set(organization_ids))
    woken = sorted(set(wake))
    pipe = get_redis().pipeline(transaction=False)
    kick_commands(pipe, woken)
    rules_version_commands(pipe, ids)
    replies = pipe.execute()
    kick_enqueue(woken, replies[: KICK_REPLIES * len(woken)])
    return rules_compiled(dict(zip(ids, replies[KICK_REPLIES * len(woken) :], strict=True)))


def _plan(post: Post, rules: CompiledRules, now: datetime) -> list[Ingested]:
    """The batches of one post (one per kind present), unsaved, and what matched."""
    out = []
    payload = post.payload
    received_at = post.received_at or now
    for kind, pairs in (
        (TriggerBatch.Kind.FIRING, payload.firing),
        (TriggerBatch.Kind.RESOLVED, payload.resolved),
    ):
        ignored = [
            {k: v for k, v in entry.items() if k != "status"}
            for entry in payload.ignored
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
            source=payload.source,
            kind=kind,
            triggers=[[s, c] for s, c in pairs],
            alerts=batch_alerts(pairs, payload.fingerprints.get(kind, [])),
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


def triggers_ingest(*, organization: Organization, payload: Payload) -> list[Ingested]:
    """Record a monitoring post (one batch per kind present) and return what matched."""
    return triggers_ingest_many([Post(organization_id=organization.pk, payload=payload)])[0]


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
