"""The fast path's database thread: API-key lookups and group commits.

One thread per web process (so one persistent database connection) does all the
database work of `escalation.fastpath`:

1. **Key lookups**: the key's SHA-256 -> (organization id, key id), cached for
   `TRIGGER_AUTH_CACHE_TTL` seconds; concurrent lookups of one key share one query.
2. **Group commit**: posts wait in `pending`; one flush loop takes everything pending
   and records it in ONE transaction (`ingest.triggers_ingest_many`), then resolves
   each post's future. While it commits, new posts queue for the next transaction, so
   the group size follows the load with no timer.
3. **Wake-up**: the evaluators of a transaction are woken in the next transaction's
   Redis round trip (the rules' version tokens), or at once when no post is waiting.
   A failed transaction (nothing committed) fails each of its posts' futures: the
   caller hands them to Django.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection

from core.auth import api_key_lookup
from core.logging import get_logger
from core.models import ApiKey
from core.scopes import TRIGGERS, key_has_scope
from escalation.evaluate import triggers_kick
from escalation.ingest import Ingested, Post, triggers_ingest_many

log = get_logger(__name__)

KeyIds = tuple[int, int]  # an integration key's (organization id, key id)


class GroupCommitter:
    """Owns one thread (so one persistent database connection) for this path."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trigger-db")
        self.kick_due: set[int] = set()  # only touched in the database thread
        self.pending: list[tuple[Post, asyncio.Future[list[Ingested]]]] = []
        self.flushing = False
        self.flusher: asyncio.Future[None] | None = None
        # key hash -> (expiry, (organization id, key id) or None)
        self.keys: dict[str, tuple[float, KeyIds | None]] = {}
        self.lookups: dict[str, asyncio.Future[KeyIds | None]] = {}

    def close(self) -> None:
        """Close the thread's database connection and stop the threads (tests; a web
        process just exits)."""
        self.executor.submit(connection_reset).result()
        self.executor.shutdown()

    # auth
    async def organization_for(self, raw: str) -> KeyIds | None:
        digest = hashlib.sha256(raw.encode()).hexdigest()
        now = time.monotonic()
        cached = self.keys.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        inflight = self.lookups.get(digest)
        if inflight is None:
            loop = asyncio.get_running_loop()
            inflight = asyncio.ensure_future(loop.run_in_executor(self.executor, self._lookup, raw))
            self.lookups[digest] = inflight
            try:
                found = await inflight
            finally:
                self.lookups.pop(digest, None)
            if len(self.keys) > 10_000:
                self.keys.clear()
            self.keys[digest] = (time.monotonic() + settings.TRIGGER_AUTH_CACHE_TTL, found)
            return found
        return await asyncio.shield(inflight)

    @staticmethod
    def _lookup(raw: str) -> KeyIds | None:
        try:
            key = api_key_lookup(raw)
        except Exception:
            connection_reset()
            raise
        if key is None or key.kind != ApiKey.Kind.INTEGRATION:
            return None  # Django answers (401, or an agent key's own rules)
        if not key_has_scope(key, TRIGGERS):
            return None  # Django answers 403 insufficient_scope (cached like any key)
        assert key.organization_id is not None  # an integration key's one organization
        return key.organization_id, key.pk

    # group commit
    async def ingest(self, post: Post) -> list[Ingested]:
        future: asyncio.Future[list[Ingested]] = asyncio.get_running_loop().create_future()
        self.pending.append((post, future))
        if not self.flushing:
            self.flushing = True
            self.flusher = asyncio.ensure_future(self._flush_loop())
        return await future

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self.pending:
                    # Quiet: wake the evaluators of the last transaction now, then stop
                    # unless posts came in meanwhile (checked with no await in between).
                    await loop.run_in_executor(self.executor, self._kick)
                    if not self.pending:
                        break
                taken, self.pending = self.pending, []
                try:
                    results = await loop.run_in_executor(
                        self.executor, self._commit, [post for post, _ in taken]
                    )
                except Exception as exc:
                    # Forget the keys: a deleted organization must not fail every
                    # following transaction until its cache entry expires.
                    self.keys.clear()
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(taken, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self.flushing = False
            # Only on an unexpected exit: never leave a post waiting (Django takes it).
            stranded, self.pending = self.pending, []
            for _, future in stranded:
                if not future.done():
                    future.set_exception(RuntimeError("trigger flush loop stopped"))

    def _commit(self, posts: list[Post]) -> list[list[Ingested]]:
        """In the database thread. The evaluators of a transaction are woken in the
        next one's Redis round trip (the rules' version tokens), or by `_kick` when no
        other post is waiting: one round trip per transaction, not two."""
        wake, self.kick_due = self.kick_due, set()
        try:
            results = triggers_ingest_many(posts, kick=False, wake=wake)
        except Exception:
            triggers_kick(wake)  # committed earlier: wake them anyway
            connection_reset()
            raise
        self.kick_due = {r.batch.organization_id for rs in results for r in rs if r.matched}
        return results

    def _kick(self) -> None:
        wake, self.kick_due = self.kick_due, set()
        triggers_kick(wake)


def connection_reset() -> None:
    """A failed transaction may leave the thread's connection unusable (a restarted
    PostgreSQL): drop it; the next use reconnects."""
    try:
        connection.close()
    except Exception:
        log.exception("trigger_fastpath_close_failed")
