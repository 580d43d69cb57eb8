"""Who may hold a websocket: checked when it connects, and again while it is open.

Connect (`admit`), in this order, so that a refusal tells an outsider nothing about
which organizations exist:

1. Credentials. `?token=<api key>`: a key that is not revoked and whose user is
   active, else 4401; it must carry the `read` scope to listen, else 4403. Without a
   token: the user of the session cookie, as `django.contrib.auth.get_user` would
   authenticate it (chat/ws_sessions.py: expired or logged-out session, changed
   password, inactive user: none), else 4403; a cookie-authenticated socket opened by
   another site's page (Origin is not Host) is 4403 too, before any lookup.
2. Connect rate (`WS_CONNECT_RATE`, a Redis counter shared by every web process):
   per key, per session user, or per client IP when step 1 failed, so a flood of
   bad tokens is slowed down as well. Over it: an error frame
   `{"type": "error", "code": "rate_limited", "retry_after": s}`, then 4429.
3. The organization. Only now is the slug looked up, by the same helper as HTTP
   (`core.access.organization_find_for_principal`, the principal built as HTTP's
   authentication builds `request.user`), and an unknown slug, a malformed one and an
   organization the principal does not belong to get the same 4403: an authenticated
   outsider learns no more than an anonymous one.

A reconnect storm (every client of a process coming back after a deploy or a Redis
failover) is admitted in batches (`admit_async`, the consumer's entry): connects that
arrive while a batch is being decided wait for the next one, and a batch looks each
distinct token up once, all its session cookies in two queries (sessions, users) and
each distinct (principal, organization) once, in one trip to the database thread, and
the batches of the last `RECENT_SECONDS` (1 s) reuse the token and organization
answers (never a session's: after a logout or a password change not even one more
cookie socket is admitted); the connect-rate counts go to Redis coalesced per bucket
(`core.ratelimit.ahit`). 5,000 sockets of 100 agents cost a few hundred queries instead
of 10,000, and a few thread hops instead of 5,000. A key revoked less than a second ago
may admit one more socket: the next recheck closes it, as it closes the sockets opened
before the revocation, and a recheck that closes anything makes the next batch look
everything up again.

While open (`Guard`): every `WS_AUTH_RECHECK_SECONDS` each web process re-validates
every principal holding one of its sockets in a handful of batched queries (keys,
users, memberships, sessions: one query each per 500 ids, not one per socket), and
closes the sockets whose principal lost the right to it. There is no invalidation to
forget: a revocation through the admin, a service, a management command or raw SQL
is seen the same way.

| what changed                                        | close code |
|-----------------------------------------------------|------------|
| key revoked or deleted, or its user deactivated      | 4401       |
| key lost the `read` scope                            | 4403       |
| session user deactivated, password changed, or the  | 4403       |
| session ended (logged out, expired)                  |            |
| membership removed (or the organization deleted)     | 4403       |

When the database cannot be reached the check is skipped (logged) and sockets stay
open until the next check succeeds: a database blip must not disconnect everyone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.http.cookie import parse_cookie
from prometheus_client import Counter

from chat.ws_batches import batched
from chat.ws_sessions import session_users
from core import scopes
from core.access import organization_find_for_principal
from core.auth import IntegrationPrincipal, api_key_lookup
from core.logging import get_logger
from core.models import ApiKey, Membership, Organization
from core.ratelimit import ahit, hit, rate
from core.throttles import client_address

log = get_logger(__name__)


CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_RATE_LIMITED = 4429

WS_REVOKED = Counter(
    "ws_auth_revoked_total", "Open websockets closed because their principal lost access", ["code"]
)
WS_REFUSED = Counter("ws_refused_total", "Websocket connects refused", ["code"])

_CHUNK = 500  # ids per IN (...): far below SQLite's and PostgreSQL's parameter limits


def check_settings() -> None:
    """Fail at start, not at the first connect, on a malformed rate."""
    rate("WS_CONNECT_RATE")
    rate("WS_FRAME_RATE")


@dataclass(frozen=True, slots=True)
class Grant:
    """What a socket was admitted on; re-validated while the socket is open."""

    organization_id: int
    key_id: int | None = None  # a `?token=` socket
    user_id: int | None = None  # the acting user (agent key or session); None: integration
    session_key: str | None = None  # a cookie socket


@dataclass(slots=True)
class Admission:
    """The verdict on a connect: `code` 0 and a grant, or a close code (and maybe a
    frame to send before closing)."""

    code: int = 0
    grant: Grant | None = None
    user: Any = None  # who acts for `typing`/`read`; None for an integration key
    key_scopes: frozenset[str] | None = None  # None: a session (not scoped)
    principal: Any = None  # as HTTP sees it (`request.user`): what core.access checks
    retry_after: float = 0.0


def _client_ip(scope: dict[str, Any]) -> str:
    """Counted like the API's per-address limits (IPv6 by its /64; behind a balancer,
    daphne's proxy headers have already put the client's address in the scope)."""
    request = HttpRequest()
    request.META["REMOTE_ADDR"] = str((scope.get("client") or ("unknown", 0))[0])
    return client_address(request)


def _same_origin(scope: dict[str, Any]) -> bool:
    headers = dict(scope.get("headers", []))
    origin = headers.get(b"origin")
    if origin is None:
        return True
    host = headers.get(b"host", b"").decode()
    return urlparse(origin.decode()).netloc == host


def _token(scope: dict[str, Any]) -> str:
    query = parse_qs(scope.get("query_string", b"").decode(errors="replace"))
    return (query.get("token") or [""])[0]


def _session_key(scope: dict[str, Any]) -> str:
    """The session cookie's value ('' without one), read as Channels' CookieMiddleware
    reads it (the first Cookie header)."""
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            return parse_cookie(value.decode("latin1")).get(settings.SESSION_COOKIE_NAME, "")
    return ""


def _credentials(
    scope: dict[str, Any], keys: dict[str, ApiKey | None], sessions: dict[str, Any]
) -> tuple[Admission, str]:
    """Step 1: (admission without organization, rate-limit bucket). `keys`: the tokens
    this batch has looked up already; `sessions`: session key -> its user, for the
    batch's cookie sockets (ws_sessions.session_users)."""
    token = _token(scope)
    if token:
        if token not in keys:
            keys[token] = api_key_lookup(token)
        key = keys[token]
        if key is None:
            return Admission(code=CLOSE_UNAUTHENTICATED), f"ws-connect:ip:{_client_ip(scope)}"
        bucket = f"ws-connect:key:{key.pk}"
        if not scopes.key_has_scope(key, scopes.READ):
            return Admission(code=CLOSE_FORBIDDEN), bucket
        grant = Grant(organization_id=0, key_id=key.pk, user_id=key.user_id)
        principal: Any = key.user
        if key.kind == ApiKey.Kind.INTEGRATION:
            assert key.organization is not None
            principal = IntegrationPrincipal(organization=key.organization, api_key=key)
        admission = Admission(
            grant=grant,
            user=key.user,
            key_scopes=frozenset(key.scopes or ()),
            principal=principal,
        )
        return admission, bucket
    session_key = _session_key(scope) if _same_origin(scope) else ""
    user = sessions.get(session_key) if session_key else None
    if user is None:
        return Admission(code=CLOSE_FORBIDDEN), f"ws-connect:ip:{_client_ip(scope)}"
    grant = Grant(organization_id=0, user_id=user.pk, session_key=session_key)
    admission = Admission(grant=grant, user=user, principal=user)
    return admission, f"ws-connect:user:{user.pk}"


def _decide_many(
    scopes: list[dict[str, Any]],
    keys: dict[str, ApiKey | None] | None = None,
    organizations: dict[tuple[str, int, str], Organization | None] | None = None,
) -> list[tuple[Admission, str]]:
    """Steps 1 and 3 for several connects (blocking: database): each distinct token is
    looked up once, each distinct (principal, organization slug) once (`keys` and
    `organizations`: what is known already). Returns each connect's admission (before
    the connect rate) and its rate-limit bucket."""
    keys = {} if keys is None else keys
    organizations = {} if organizations is None else organizations
    cookies = {_session_key(s) for s in scopes if not _token(s) and _same_origin(s)}
    cookies.discard("")
    sessions = session_users(cookies) if cookies else {}
    out = []
    for scope in scopes:
        admission, bucket = _credentials(scope, keys, sessions)
        grant = admission.grant
        if not admission.code and grant is not None:
            slug = scope["url_route"]["kwargs"]["organization"]
            principal = admission.principal
            if isinstance(principal, IntegrationPrincipal):
                who = ("key", principal.api_key.pk, slug)
            else:
                who = ("user", principal.pk, slug)
            if who not in organizations:
                # The HTTP rule (core.access): a malformed, unknown or other tenant's
                # slug is one refusal, here 4403 where HTTP answers 404.
                organizations[who] = organization_find_for_principal(principal=principal, slug=slug)
            organization = organizations[who]
            if organization is None:
                admission = Admission(code=CLOSE_FORBIDDEN)
            else:
                admission.grant = Grant(
                    organization_id=organization.pk,
                    key_id=grant.key_id,
                    user_id=grant.user_id,
                    session_key=grant.session_key,
                )
        out.append((admission, bucket))
    return out


def _verdict(admission: Admission, retry_after: float) -> Admission:
    """Step 2 decides first: over the connect rate is 4429 whatever else is wrong."""
    if retry_after:
        WS_REFUSED.labels(str(CLOSE_RATE_LIMITED)).inc()
        return Admission(code=CLOSE_RATE_LIMITED, retry_after=retry_after)
    if admission.code:
        WS_REFUSED.labels(str(admission.code)).inc()
    return admission


def admit(scope: dict[str, Any]) -> Admission:
    """Decide a connect (blocking: database and Redis). See the module docstring."""
    [(admission, bucket)] = _decide_many([scope])
    limit, window = rate("WS_CONNECT_RATE")
    return _verdict(admission, hit(bucket, limit=limit, window=window))


# How long the batches of one process reuse what they looked up (a token's key, a
# principal's organization). A key revoked within this second may admit one more socket,
# which the next recheck closes (as it closes one opened just before the revocation);
# any recheck that closes a socket also drops everything remembered.
RECENT_SECONDS = 1.0
_recent: dict[str, Any] = {"since": 0.0, "keys": {}, "organizations": {}}


def _decide_recent(scopes: list[dict[str, Any]]) -> list[tuple[Admission, str]]:
    """`_decide_many` with what the batches of the last RECENT_SECONDS looked up (runs
    only in the database thread, one batch at a time)."""
    now = time.monotonic()
    if now - _recent["since"] > RECENT_SECONDS:
        _recent.update(since=now, keys={}, organizations={})
    return _decide_many(scopes, _recent["keys"], _recent["organizations"])


def forget_recent() -> None:
    """Someone lost access: the next batch looks everything up again."""
    _recent["since"] = 0.0


async def admit_async(scope: dict[str, Any]) -> Admission:
    """`admit` for the consumer: decided with the connects around it (module docstring)."""
    admission, bucket = await batched(_decide_recent).submit(scope)
    limit, window = rate("WS_CONNECT_RATE")
    return _verdict(admission, await ahit(bucket, limit=limit, window=window))


# --- while open ------------------------------------------------------------------------------


def _chunks(ids: Iterable[Any]) -> Iterable[list[Any]]:
    items = sorted(ids)
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


@dataclass(frozen=True, slots=True)
class Recheck:
    closes: dict[Grant, int]  # grants no longer valid, with the close code
    key_scopes: dict[int, frozenset[str]]  # current scopes of the keys still valid


def recheck(grants: Iterable[Grant]) -> Recheck:
    """Which of these grants are no longer valid. A few queries for all of them."""
    grants = set(grants)
    key_ids = {g.key_id for g in grants if g.key_id is not None}
    user_ids = {g.user_id for g in grants if g.user_id is not None}
    org_ids = {g.organization_id for g in grants}
    session_keys = {g.session_key for g in grants if g.session_key}

    keys: dict[int, frozenset[str]] = {}
    key_orgs: set[tuple[int, int | None]] = set()
    for chunk in _chunks(key_ids):
        key_rows = ApiKey.objects.filter(pk__in=chunk, revoked_at__isnull=True).values_list(
            "pk", "scopes", "organization_id"
        )
        for pk, key_scopes, organization_id in key_rows:
            keys[pk] = frozenset(key_scopes or ())
            key_orgs.add((pk, organization_id))
    active: set[int] = set()
    members: set[tuple[int, int]] = set()
    for chunk in _chunks(user_ids):
        users = get_user_model().objects.filter(pk__in=chunk, is_active=True)
        active.update(users.values_list("pk", flat=True))
        member_rows = Membership.objects.filter(user_id__in=chunk, organization_id__in=org_ids)
        members.update(member_rows.values_list("user_id", "organization_id"))
    # Who each session is now, verified as at connect (ws_sessions): logged out,
    # expired, password changed and inactive all come back without a user.
    session_owner = {k: u.pk for k, u in session_users(session_keys).items()}

    def verdict(g: Grant) -> int:
        if g.key_id is not None:
            if g.key_id not in keys or (g.user_id is not None and g.user_id not in active):
                return CLOSE_UNAUTHENTICATED
            if not scopes.scopes_allow(keys[g.key_id], scopes.READ):
                return CLOSE_FORBIDDEN
            if g.user_id is None:  # integration key: still its organization's
                return 0 if (g.key_id, g.organization_id) in key_orgs else CLOSE_FORBIDDEN
        if g.user_id is None or g.user_id not in active:
            return CLOSE_FORBIDDEN
        if (g.user_id, g.organization_id) not in members:
            return CLOSE_FORBIDDEN
        if g.key_id is None and session_owner.get(g.session_key or "") != g.user_id:
            return CLOSE_FORBIDDEN  # logged out, expired, or the password changed
        return 0

    closes = {g: code for g in grants if (code := verdict(g))}
    return Recheck(closes=closes, key_scopes=keys)


class Guarded(Protocol):
    grant: Grant | None
    key_scopes: frozenset[str] | None

    def revoke(self, code: int) -> None:
        """Close the socket: its principal lost access (must not block)."""


class Guard:
    """The open sockets of one event loop (one web process), re-validated periodically."""

    def __init__(self) -> None:
        self._sockets: set[Guarded] = set()
        self._task: asyncio.Task[None] | None = None

    def watch(self, socket: Guarded) -> None:
        self._sockets.add(socket)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def forget(self, socket: Guarded) -> None:
        self._sockets.discard(socket)

    async def _run(self) -> None:
        while self._sockets:
            await asyncio.sleep(settings.WS_AUTH_RECHECK_SECONDS)
            try:
                await self.check()
            except Exception:
                # Keep checking: a dead task would leave every open socket unchecked.
                log.exception("ws_auth_recheck_error")

    async def check(self) -> None:
        sockets = [s for s in self._sockets if s.grant is not None]
        if not sockets:
            return
        grants = [s.grant for s in sockets if s.grant is not None]
        try:
            result = await database_sync_to_async(recheck)(grants)
        except Exception as exc:
            # Database down: keep the sockets (the check runs again), say so once per tick.
            log.warning("ws_auth_recheck_failed", error=f"{type(exc).__name__}: {exc}")
            return
        if result.closes:
            forget_recent()
        for socket in sockets:
            grant = socket.grant
            if grant is None or socket not in self._sockets:
                continue  # closed meanwhile
            code = result.closes.get(grant)
            if code:
                self._sockets.discard(socket)
                WS_REVOKED.labels(str(code)).inc()
                log.info(
                    "ws_auth_revoked",
                    organization_id=grant.organization_id,
                    api_key_id=grant.key_id,
                    user_id=grant.user_id,
                    code=code,
                )
                socket.revoke(code)
            elif grant.key_id is not None:
                socket.key_scopes = result.key_scopes.get(grant.key_id, socket.key_scopes)


_guards: dict[int, Guard] = {}


def get_guard() -> Guard:
    """The guard of the running event loop (one per process in daphne)."""
    loop = asyncio.get_running_loop()
    guard = _guards.get(id(loop))
    if guard is None:
        guard = _guards[id(loop)] = Guard()
    return guard
