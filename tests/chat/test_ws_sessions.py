"""Session-cookie websockets are authenticated in batches (chat/ws_sessions.py): for every
kind of session the verdict is `django.contrib.auth.get_user`'s, and a whole batch costs
two queries. Security-critical: a logged-out or expired session, a changed password, an
inactive user and a tampered session must all be refused (issue 12 item 5)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.http import HttpRequest
from django.test import Client, override_settings
from django.utils import timezone

from chat import ws_auth
from chat.ws_sessions import session_users
from core.services import agent_create, membership_add

pytestmark = pytest.mark.django_db

OLD_SECRET = "an-old-secret-key-being-rotated-out-" + "x" * 20
HOST = b"chat.example.com"


def _login(user: Any) -> str:
    browser = Client()
    browser.force_login(user)
    return str(browser.cookies[settings.SESSION_COOKIE_NAME].value)


def _django_says(session_key: str) -> int | None:
    """What Django's own get_user makes of the session (it may flush or rotate it: call
    after the batched answer)."""
    request = HttpRequest()
    request.session = SessionStore(session_key)
    user = get_user(request)
    return user.pk if user.is_authenticated else None


def _sessions(make_org: Any) -> dict[str, str]:
    """One session of each kind, by name."""
    users = {
        name: agent_create(username=name, password="correct horse battery")
        for name in ("alice", "bob", "carol", "dave", "eve", "frank", "grace")
    }
    keys = {name: _login(user) for name, user in users.items()}
    # bob logged out: his session row is gone
    Session.objects.filter(session_key=keys["bob"]).delete()
    # carol changed her password: her session's hash no longer matches
    users["carol"].set_password("a new password entirely")
    users["carol"].save()
    # dave was deactivated
    users["dave"].is_active = False
    users["dave"].save()
    # eve's session row was tampered with (not signed with our secret)
    Session.objects.filter(session_key=keys["eve"]).update(session_data="forged:data:sig")
    # frank's session expired
    Session.objects.filter(session_key=keys["frank"]).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    # grace logged in under the previous SECRET_KEY, now a fallback (a key rotation)
    with override_settings(SECRET_KEY=OLD_SECRET):
        keys["grace"] = _login(users["grace"])
    keys["nobody"] = "x" * 32  # no such session
    keys["short"] = "abc"  # not a key Django accepts
    return keys


def test_each_kind_of_session_gets_django_get_users_verdict(
    make_org: Any, django_assert_num_queries: Any
) -> None:
    keys = _sessions(make_org)
    with override_settings(SECRET_KEY_FALLBACKS=[OLD_SECRET]):
        # when every session is resolved at once: one query for sessions, one for users
        with django_assert_num_queries(2):
            found = {k: u.pk for k, u in session_users(keys.values()).items()}
        # then exactly alice and grace (fallback secret) are anybody, as for Django
        names = {name for name, key in keys.items() if key in found}
        assert names == {"alice", "grace"}
        for key in keys.values():
            assert found.get(key) == _django_says(key), key


@pytest.mark.django_db(transaction=True)  # the batch runs in the database thread
def test_a_storm_of_cookie_sockets_looks_sessions_up_once_per_batch(
    make_org: Any, monkeypatch: Any
) -> None:
    acme = make_org("acme")
    users = [agent_create(username=f"agent{n}", password=None) for n in range(4)]
    for user in users:
        membership_add(organization=acme, user=user, role="agent")
    keys = [_login(user) for user in users]
    Session.objects.filter(session_key=keys[3]).delete()  # logged out

    def scope(key: str, origin: bytes | None = None) -> dict[str, Any]:
        headers = [(b"host", HOST), (b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode())]
        if origin:
            headers.append((b"origin", origin))
        return {
            "type": "websocket",
            "path": "/ws/chat/acme/",
            "query_string": b"",
            "headers": headers,
            "client": ("203.0.113.7", 50000),
            "url_route": {"args": (), "kwargs": {"organization": "acme"}},
        }

    scopes = [scope(keys[i % 4]) for i in range(40)]
    scopes += [scope(keys[0], origin=b"https://evil.example")]  # another site's page

    calls: list[set[str]] = []

    def counted(session_keys: Any) -> dict[str, Any]:
        calls.append(set(session_keys))
        return session_users(session_keys)

    monkeypatch.setattr(ws_auth, "session_users", counted)
    expected = [a.code for a in map(ws_auth.admit, scopes)]
    assert expected.count(0) == 30 and expected.count(4403) == 11
    calls.clear()

    async def storm() -> list[ws_auth.Admission]:
        return await asyncio.gather(*(ws_auth.admit_async(s) for s in scopes))

    admitted = asyncio.run(storm())
    assert [a.code for a in admitted] == expected
    assert {a.grant.user_id for a in admitted if a.grant} == {u.pk for u in users[:3]}
    # one lookup for the batch's distinct cookies; the cross-site socket's is never read
    assert calls == [set(keys)]


def test_a_recheck_closes_a_cookie_socket_whose_password_changed(make_org: Any) -> None:
    acme = make_org("acme")
    alice = agent_create(username="alice", password="correct horse battery")
    membership_add(organization=acme, user=alice, role="agent")
    key = _login(alice)
    grant = ws_auth.Grant(organization_id=acme.pk, user_id=alice.pk, session_key=key)
    assert ws_auth.recheck([grant]).closes == {}
    alice.set_password("changed elsewhere")
    alice.save()
    assert ws_auth.recheck([grant]).closes == {grant: ws_auth.CLOSE_FORBIDDEN}
