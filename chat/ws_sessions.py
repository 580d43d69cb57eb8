"""Session-cookie users of many websockets at once (chat/ws_auth.py's admission batches).

`session_users(keys)` answers, for each session key, who `django.contrib.auth.get_user`
would say the session belongs to, with a fixed number of queries for the whole batch
instead of two per socket (Channels' `AuthMiddlewareStack` did a database thread hop
per socket, even for `?token=` sockets that carry no cookie):

1. Sessions. With a database engine (`db`, `cached_db`): one query per 500 keys for
   the rows that have not expired, each decoded by the engine's own `decode` (a
   tampered or foreign-signed row decodes to nothing). Any other engine: each key
   loaded by its own `SessionStore`, still inside the batch's one thread hop.
2. Users. One query per 500 ids per authentication backend whose `get_user` is
   `ModelBackend`'s, then that backend's own `user_can_authenticate` (an inactive
   user is refused); any other backend's `get_user` is called as it is.
3. The session's auth hash, verified exactly as `get_user` does: against the user's
   current `get_session_auth_hash()` (a changed password, and so every session from
   before it, is refused), then against the hashes of `SECRET_KEY_FALLBACKS`.

Differences from `get_user`, all of them writes a websocket cannot carry: a session
that fails the hash is refused but not flushed (the browser's next HTTP request does
that), and one verified by a fallback secret is not given a new key (the new cookie
could not reach the browser over a websocket: its HTTP requests rotate it).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.crypto import constant_time_compare

_CHUNK = 500  # ids per IN (...): far below SQLite's and PostgreSQL's parameter limits
DB_SESSION_ENGINES = (
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cached_db",
)


def _chunks(items: Iterable[Any]) -> Iterable[list[Any]]:
    ordered = sorted(items)
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


def session_data(session_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The data of each live session among `session_keys` (absent: none, or expired)."""
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    # A key the engine would not accept (too short) is no session, as for Django.
    keys = {k for k in session_keys if store_class(session_key=k).session_key is not None}
    out: dict[str, dict[str, Any]] = {}
    if settings.SESSION_ENGINE in DB_SESSION_ENGINES:
        model = store_class.get_model_class()
        decoder = store_class()
        now = timezone.now()
        for chunk in _chunks(keys):
            rows = model.objects.filter(session_key__in=chunk, expire_date__gt=now)
            for key, raw in rows.values_list("session_key", "session_data"):
                data = decoder.decode(raw)
                if data:
                    out[key] = data
        return out
    for key in keys:
        store = store_class(session_key=key)
        data = dict(store.items())
        if data and store.session_key == key:
            out[key] = data
    return out


def _users(wanted: dict[str, set[Any]]) -> dict[tuple[str, Any], Any]:
    """(backend path, user id) -> the user its backend's `get_user` returns, or None."""
    found: dict[tuple[str, Any], Any] = {}
    for path, ids in wanted.items():
        backend = load_backend(path)
        if isinstance(backend, ModelBackend) and type(backend).get_user is ModelBackend.get_user:
            model = get_user_model()
            for chunk in _chunks(ids):
                for user in model._default_manager.filter(pk__in=chunk):
                    if backend.user_can_authenticate(user):
                        found[(path, user.pk)] = user
        else:
            for user_id in ids:
                found[(path, user_id)] = backend.get_user(user_id)
    return found


def _hash_verified(user: Any, session: dict[str, Any]) -> bool:
    if not hasattr(user, "get_session_auth_hash"):
        return True  # what get_user does for a user model without one
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash:
        return False
    if constant_time_compare(session_hash, user.get_session_auth_hash()):
        return True
    return any(
        constant_time_compare(session_hash, fallback)
        for fallback in user.get_session_auth_fallback_hash()
    )


def session_users(session_keys: Iterable[str]) -> dict[str, Any]:
    """session key -> its user, for the sessions `get_user` would authenticate (blocking:
    database). A key that is absent from the answer has no authenticated user."""
    sessions = session_data(session_keys)
    pk_field = get_user_model()._meta.pk
    assert pk_field is not None
    claims: dict[str, tuple[str, Any]] = {}
    wanted: dict[str, set[Any]] = {}
    for key, session in sessions.items():
        try:
            user_id = pk_field.to_python(session[SESSION_KEY])
            backend_path = session[BACKEND_SESSION_KEY]
        except (KeyError, ValidationError):
            continue
        if backend_path not in settings.AUTHENTICATION_BACKENDS:
            continue
        claims[key] = (backend_path, user_id)
        wanted.setdefault(backend_path, set()).add(user_id)
    users = _users(wanted)
    out: dict[str, Any] = {}
    for key, claim in claims.items():
        user = users.get(claim)
        if user is not None and _hash_verified(user, sessions[key]):
            out[key] = user
    return out
