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
- **validation**: the one parser of these payloads (`escalation.payloads`), which the
  DRF serializers delegate to: a refused payload is answered here with the view's 400
  (the same field errors, through the configured DRF exception handler), after the
  post is counted against the rate limit as the view's throttle counts it. Anything
  else this layer does not handle (unexpected content type or charset, malformed JSON,
  too big, an unknown or agent key...) is handed to the Django view untouched (the
  body is replayed), so those answers keep their exact shape.
- **group commit** (`escalation.group_commit`): posts wait in a list; ONE database
  thread records everything pending in one transaction (`ingest.triggers_ingest_many`:
  rules from the per-process cache, a bulk INSERT, the commit), and only then are the
  posts answered 202. A failed transaction (nothing committed) hands its posts to the
  Django view, which retries them one by one and answers as it always did (e.g. 503
  `database_busy`).

So 202 still means: the batch row is committed. Anything else (other paths, methods,
websockets) goes straight to the wrapped application.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework.settings import api_settings

from core.bounded_input import json_problem
from core.errors import rate_limited
from core.logging import get_logger
from core.security_headers import security_headers
from core.throttles import api_key_ahit
from escalation.group_commit import GroupCommitter, KeyIds
from escalation.ingest import Post
from escalation.payloads import PayloadInvalid, ingest_body, parse_alertmanager, parse_triggers

log = get_logger(__name__)
request_log = get_logger("core.request")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

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


class _Refused(Exception):
    """The payload is refused: answer the view's 400 here (same parser, same handler)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields


class _RateLimited(Exception):
    """The key is over TRIGGER_RATE: answer 429 here (Django would too)."""

    def __init__(self, wait: float) -> None:
        self.wait = wait


def _render(payload: Any) -> bytes:
    """DRF's JSONRenderer: compact, UTF-8, the two JavaScript line terminators escaped."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def _refusal(fields: dict[str, Any]) -> bytes:
    """The body the DRF view answers for these field errors: built by the configured
    exception handler itself, from the same ValidationError the serializer raises."""
    handler: Callable[[Exception, dict[str, Any]], Any] = api_settings.EXCEPTION_HANDLER  # type: ignore[assignment]
    return _render(handler(ValidationError(fields), {}).data)


def _strict_constant(value: str) -> Any:
    raise ValueError(f"{value} is not valid JSON")  # as DRF's parser


class TriggerFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.committer = GroupCommitter()

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
            except _Refused as refused:
                status, answer = 400, _refusal(refused.fields)
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
        """The 202 body once the post is committed, or None: Django answers. Raises
        _Refused (400) or _RateLimited (429) for the caller to answer."""
        received_at = timezone.now()
        try:
            headers = self._headers(scope)
            organization_id, key_id = await self._authenticate(headers)
            data = self._json(headers, body)
        except Fallback:
            return None
        except Exception:
            # The key lookup failed (database down...): nothing was written, so Django
            # answers this one as it would have without the fast path.
            log.warning("trigger_fastpath_auth_failed", exc_info=True)
            return None
        refused: PayloadInvalid | None = None
        try:
            payload = parse_triggers(data) if path == TRIGGERS else parse_alertmanager(data)
        except PayloadInvalid as exc:
            refused = exc
        # Counted once answered here, so a post left to Django is counted there, not
        # twice; before the payload's 400, as the view's throttle is.
        wait = await api_key_ahit(key_id, scope="triggers")
        if wait:
            raise _RateLimited(wait)
        if refused is not None:
            raise _Refused(refused.fields)
        post = Post(organization_id=organization_id, payload=payload, received_at=received_at)
        try:
            results = await self.committer.ingest(post)
        except Exception:
            # Nothing was committed: the Django view records it (or says why not).
            log.warning("trigger_fastpath_commit_failed", exc_info=True)
            return None
        return _render(ingest_body(results, payload.received, alertmanager=path == ALERTMANAGER))

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
