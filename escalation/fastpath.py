"""ASGI fast path for monitoring posts: `POST /api/triggers/` and `/api/alertmanager/`.

One trigger per POST through Django + DRF costs ~12 ms of CPU in daphne (a thread hop
per request, a new database connection per request, the API-key query, middleware,
DRF's parsing and validation). This layer sits in front of Django (`core.asgi`) and
answers the well-formed posts of a known integration key itself:

- **auth**: the key's SHA-256 -> organization, cached in the process for
  `TRIGGER_AUTH_CACHE_TTL` seconds (default 2). A revoked key, a deleted key or a
  deleted organization stops working on this path within that TTL, whatever way it
  was revoked (admin, queryset update, raw SQL): there is no invalidation to forget.
  The lookup itself is `core.auth.api_key_lookup` (same rules, same `last_used_at`);
  a key without the `triggers` scope is left to Django, which answers 403.
- **rate limit**: each well-formed post counts against its key's `TRIGGER_RATE` in
  the same Redis bucket as the Django views' throttle (`core.throttles`); over it the
  answer is the same 429 with `Retry-After`, given here.
- **validation**: the exact rules of the DRF serializers, as a strict subset: any
  payload this code is not sure about (wrong type, missing field, out-of-range status,
  blank service, unexpected content type or charset, too big...) is handed to the
  Django view untouched (the body is replayed), so every error keeps its 400 shape
  and field errors, and an unknown or agent key keeps its 401/agent handling.
- **group commit**: posts wait in a list; ONE database thread records everything
  pending in one transaction (`ingestion.triggers_ingest_many`: rules from the
  per-process cache, a bulk INSERT, the commit), and only then are the posts answered
  202. The evaluators' wake-up rides in the next transaction's Redis round trip (the
  rules' version tokens), or is sent at once when no post is waiting; a lost wake-up
  is re-done by the sweeper, as before. While it commits, new posts queue for the next transaction,
  so the batch size follows the load with no timer. A failed transaction (nothing
  committed) hands its posts to the Django view, which retries them one by one and
  answers as it always did (e.g. 503 `database_busy`).

So 202 still means: the batch row is committed. Anything else (other paths, methods,
websockets) goes straight to the wrapped application.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils import timezone

from core.bounded_input import json_problem
from core.errors import rate_limited
from core.logging import get_logger
from core.security_headers import security_headers
from core.throttles import api_key_ahit
from escalation.alerts import alert_fingerprint
from escalation.ingestion import Ingested, Pair, Post, triggers_ingest_many, triggers_kick
from escalation.serializers import MAX_TRIGGERS, alert_pair, label_name_error

log = get_logger(__name__)
request_log = get_logger("core.request")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]
KeyIds = tuple[int, int]  # an integration key's (organization id, key id)

TRIGGERS = "/api/triggers/"
ALERTMANAGER = "/api/alertmanager/"
# Bigger bodies (1,000 alerts with many labels) are rare: Django takes them.
MAX_BODY = 1024 * 1024
# The headers DRF puts on the same 202; the security headers Django's middleware adds
# come from `security_headers()` (built from settings, like the middleware's).
RESPONSE_HEADERS = [
    (b"content-type", b"application/json"),
    (b"vary", b"Accept"),
    (b"allow", b"POST, OPTIONS"),
]


class Fallback(Exception):
    """Not for the fast path: let the Django view answer."""


class _RateLimited(Exception):
    """The key is over TRIGGER_RATE: answer 429 here (Django would too)."""

    def __init__(self, wait: float) -> None:
        self.wait = wait


def _render(payload: Any) -> bytes:
    """DRF's JSONRenderer: compact, UTF-8."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


# --- validation: a strict subset of escalation.serializers ------------------------------


def _text(value: Any, *, max_length: int | None, allow_blank: bool) -> str:
    """What DRF's CharField(trim_whitespace=True) accepts, for str input only."""
    if type(value) is not str:
        raise Fallback
    value = value.strip()
    if (not value and not allow_blank) or (max_length is not None and len(value) > max_length):
        raise Fallback
    if "\x00" in value:
        raise Fallback
    try:
        value.encode("utf-8")  # lone surrogates: DRF refuses them
    except UnicodeEncodeError:
        raise Fallback from None
    return value


def _label_name(value: Any) -> str:
    """AlertSerializer's label-name rule (escalation.serializers.label_name_error)."""
    if type(value) is not str or label_name_error(value) is not None:
        raise Fallback
    return value


def _status(value: Any) -> int:
    """StatusCodeField: a number or a string of digits, 100-599."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Fallback
    text = str(value).strip()
    if not text.isdigit() or not 100 <= int(text) <= 599:
        raise Fallback
    return int(text)


def _items(value: Any) -> list[Any]:
    if type(value) is not list or not 1 <= len(value) <= MAX_TRIGGERS:
        raise Fallback
    return value


def parse_triggers(data: Any) -> tuple[str, list[Pair]]:
    """(source, pairs) of a well-formed `{"gatilhos": [...]}` / `{"triggers": [...]}`."""
    if type(data) is not dict or ("gatilhos" in data) == ("triggers" in data):
        raise Fallback
    if "gatilhos" in data:
        source, items, service_key, status_key = "seed", data["gatilhos"], "servico", "retorno"
    else:
        source, items, service_key, status_key = "api", data["triggers"], "service", "status"
    pairs = []
    for item in _items(items):
        if type(item) is not dict or service_key not in item or status_key not in item:
            raise Fallback
        service = _text(item[service_key], max_length=100, allow_blank=False)
        pairs.append((service, _status(item[status_key])))
    return source, pairs


def parse_alertmanager(
    data: Any,
) -> tuple[list[Pair], list[Pair], list[dict[str, Any]], dict[str, list[str]]]:
    """(firing, resolved, unmappable, fingerprints of the firing / resolved pairs) of a
    well-formed Alertmanager v4 payload (escalation/alerts.py)."""
    if type(data) is not dict or data.get("version") != "4":
        raise Fallback
    if data.get("status") not in ("firing", "resolved"):
        raise Fallback
    for key in ("receiver", "groupKey"):
        if key in data:
            _text(data[key], max_length=None, allow_blank=True)
    firing, resolved, ignored = [], [], []
    fingerprints: dict[str, list[str]] = {"firing": [], "resolved": []}
    for index, alert in enumerate(_items(data.get("alerts"))):
        if type(alert) is not dict or alert.get("status") not in ("firing", "resolved"):
            raise Fallback
        raw_labels = alert.get("labels")
        if type(raw_labels) is not dict:
            raise Fallback
        labels = {
            _label_name(k): _text(v, max_length=None, allow_blank=True)
            for k, v in raw_labels.items()
        }
        if "annotations" in alert and type(alert["annotations"]) is not dict:
            raise Fallback
        for key in ("startsAt", "endsAt", "fingerprint"):
            if key in alert:
                _text(alert[key], max_length=None, allow_blank=True)
        pair = alert_pair(labels)
        if isinstance(pair, str):
            ignored.append(
                {"alert": index, "labels": labels, "reason": pair, "status": alert["status"]}
            )
        elif alert["status"] == "firing":
            firing.append(pair)
            fingerprints["firing"].append(alert_fingerprint(alert, labels))
        else:
            resolved.append(pair)
            fingerprints["resolved"].append(alert_fingerprint(alert, labels))
    return firing, resolved, ignored, fingerprints


def _strict_constant(value: str) -> Any:
    raise ValueError(f"{value} is not valid JSON")  # as DRF's parser


# --- the database thread: key lookups and group commits ----------------------------------


class _Committer:
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
        self.executor.submit(_reset_connection).result()
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
        from core.auth import api_key_lookup
        from core.models import ApiKey
        from core.scopes import TRIGGERS, key_has_scope

        try:
            key = api_key_lookup(raw)
        except Exception:
            _reset_connection()
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
            _reset_connection()
            raise
        self.kick_due = {r.batch.organization_id for rs in results for r in rs if r.matched}
        return results

    def _kick(self) -> None:
        wake, self.kick_due = self.kick_due, set()
        triggers_kick(wake)


def _reset_connection() -> None:
    """A failed transaction may leave the thread's connection unusable (a restarted
    PostgreSQL): drop it; the next use reconnects."""
    from django.db import connection

    try:
        connection.close()
    except Exception:
        log.exception("trigger_fastpath_close_failed")


# --- the ASGI layer -------------------------------------------------------------------


class TriggerFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.committer = _Committer()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or (path != TRIGGERS and path != ALERTMANAGER)
            or not settings.TRIGGER_FASTPATH
        ):
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= MAX_BODY:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if not more:
            status, extra = 202, list[tuple[bytes, bytes]]()
            try:
                answer = await self._answer(scope, path, body)
            except _RateLimited as limited:
                # The DRF throttle's 429 (same body, same Retry-After), built the same way.
                error, retry = rate_limited(limited.wait)
                status, answer = 429, _render(error)
                extra = [(name.lower().encode(), value.encode()) for name, value in retry.items()]
            if answer is not None:
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            *RESPONSE_HEADERS,
                            *security_headers(https=scope.get("scheme") == "https"),
                            *extra,
                            (b"content-length", str(len(answer)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": answer})
                if request_log.isEnabledFor(logging.INFO):
                    request_log.info(
                        "request",
                        method="POST",
                        path=path,
                        status=status,
                        duration_ms=round((time.perf_counter() - start) * 1000, 1),
                    )
                return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        await self.app(scope, replay, send)

    async def _answer(self, scope: Scope, path: str, body: bytes) -> bytes | None:
        """The 202 body once the post is committed, or None: Django answers."""
        received_at = timezone.now()
        try:
            headers = self._headers(scope)
            organization_id, key_id = await self._authenticate(headers)
            data = self._json(headers, body)
            if path == TRIGGERS:
                source, firing = parse_triggers(data)
                resolved: list[Pair] = []
                ignored: list[dict[str, Any]] = []
                fingerprints: dict[str, list[str]] = {}
            else:
                source = "alertmanager"
                firing, resolved, ignored, fingerprints = parse_alertmanager(data)
        except Fallback:
            return None
        except Exception:
            # The key lookup failed (database down...): nothing was written, so Django
            # answers this one as it would have without the fast path.
            log.warning("trigger_fastpath_auth_failed", exc_info=True)
            return None
        # Counted once parsed, so a post left to Django is counted there, not twice.
        wait = await api_key_ahit(key_id, scope="triggers")
        if wait:
            raise _RateLimited(wait)
        post = Post(
            organization_id=organization_id,
            source=source,
            firing=firing,
            resolved=resolved,
            ignored=ignored,
            received_at=received_at,
            fingerprints=fingerprints,
        )
        try:
            results = await self.committer.ingest(post)
        except Exception:
            # Nothing was committed: the Django view records it (or says why not).
            log.warning("trigger_fastpath_commit_failed", exc_info=True)
            return None
        from escalation.api import ingest_body

        payload = ingest_body(
            results, len(firing) + len(resolved), alertmanager=path == ALERTMANAGER
        )
        return _render(payload)

    async def _authenticate(self, headers: dict[bytes, bytes]) -> KeyIds:
        parts = headers.get(b"authorization", b"").split()
        if len(parts) != 2 or parts[0].lower() not in (b"bearer", b"token"):
            raise Fallback
        raw = parts[1].decode(errors="replace")
        if not raw or len(raw) > 200:
            raise Fallback
        found = await self.committer.organization_for(raw)
        if found is None:
            raise Fallback
        return found

    @staticmethod
    def _headers(scope: Scope) -> dict[bytes, bytes]:
        """The headers this path reads, each present at most once; plus the checks
        Django's middleware makes before any view (allowed host, HTTPS redirect)."""
        wanted = {b"authorization", b"content-type", b"content-length", b"host"}
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers", ()):
            if name in wanted:
                if name in headers:  # Django would join them: its answer, not ours
                    raise Fallback
                headers[name] = value
        if settings.SECURE_SSL_REDIRECT and scope.get("scheme") != "https":
            raise Fallback
        if settings.ALLOWED_HOSTS != ["*"]:
            domain, _ = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
            if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
                raise Fallback
        return headers

    @staticmethod
    def _json(headers: dict[bytes, bytes], body: bytes) -> Any:
        # Without a Content-Length (a chunked body) DRF reads no data at all: Django's 400.
        if headers.get(b"content-length", b"").strip() != str(len(body)).encode():
            raise Fallback
        media, _, params = headers.get(b"content-type", b"").partition(b";")
        if media.strip().lower() != b"application/json":
            raise Fallback
        charset = params.strip().lower()
        if charset and charset not in (b"charset=utf-8", b'charset="utf-8"'):
            raise Fallback
        try:
            data = json.loads(body.decode("utf-8"), parse_constant=_strict_constant)
        except (ValueError, RecursionError):
            raise Fallback from None
        if json_problem(data, settings.JSON_MAX_DEPTH) is not None:
            raise Fallback  # the Django parser's 400
        return data
