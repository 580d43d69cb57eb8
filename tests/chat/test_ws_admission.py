"""Who may open `/ws/chat/<organization>/`: `chat.ws_auth.admit` on a built ASGI scope.

No daphne: the decision is a blocking function of the scope (database and Redis), so
each rule is checked directly and fast. The end-to-end behaviour (close codes over a
real socket) is in tests/chat/test_ws_security.py and test_ws_e2e.py. Each test pins
a condition whose removal leaks another organization's stream (planted with
contrib/mutation.py, see docs/testing.md).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from chat.ws_auth import admit
from core.services import agent_create, api_key_create, membership_add

pytestmark = pytest.mark.django_db

HOST = b"chat.example.com"


def _session_of(user: Any) -> str:
    """A real login session of `user` (the cookie a browser would send)."""
    browser = Client()
    browser.force_login(user)
    return str(browser.cookies[settings.SESSION_COOKIE_NAME].value)


def _scope(
    slug: str, *, token: str = "", session: str = "", origin: bytes | None = None
) -> dict[str, Any]:
    headers = [(b"host", HOST)]
    if origin is not None:
        headers.append((b"origin", origin))
    if session:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode()))
    return {
        "type": "websocket",
        "path": f"/ws/chat/{slug}/",
        "query_string": f"token={token}".encode() if token else b"",
        "headers": headers,
        "client": ("203.0.113.7", 50000),
        "url_route": {"args": (), "kwargs": {"organization": slug}},
    }


@pytest.fixture
def orgs(make_org: Any) -> tuple[Any, Any]:
    return make_org("acme"), make_org("globex")


def test_an_integration_key_listens_to_its_own_organization_only(orgs: tuple[Any, Any]) -> None:
    acme, _ = orgs
    _, raw = api_key_create(name="dashboard", organization=acme, scopes=["read"])
    mine = admit(_scope("acme", token=raw))
    assert mine.code == 0 and mine.grant is not None
    assert mine.grant.organization_id == acme.pk
    assert mine.user is None  # an integration key never acts as a user (typing/read)
    # another organization's stream: the same 4403 as an unknown one
    assert admit(_scope("globex", token=raw)).code == 4403
    assert admit(_scope("nope", token=raw)).code == 4403


def test_an_agent_key_listens_where_its_user_is_a_member_only(orgs: tuple[Any, Any]) -> None:
    acme, globex = orgs
    alice = agent_create(username="alice", password=None)
    membership_add(organization=acme, user=alice, role="agent")
    bob = agent_create(username="bob", password=None)
    membership_add(organization=globex, user=bob, role="agent")  # globex has members
    _, raw = api_key_create(name="alice", user=alice)
    granted = admit(_scope("acme", token=raw))
    assert granted.code == 0 and granted.grant is not None
    assert granted.grant.organization_id == acme.pk
    assert admit(_scope("globex", token=raw)).code == 4403


def test_a_cookie_socket_from_another_sites_page_is_refused(orgs: tuple[Any, Any]) -> None:
    acme, _ = orgs
    alice = agent_create(username="alice", password=None)
    membership_add(organization=acme, user=alice, role="agent")
    alice_session = _session_of(alice)
    # the browser sends the session cookie with a socket opened by any page: only the
    # Origin says whose page it is
    assert admit(_scope("acme", session=alice_session, origin=b"https://evil.example")).code == 4403
    evil = b"https://chat.example.com.evil.example"
    assert admit(_scope("acme", session=alice_session, origin=evil)).code == 4403
    same = admit(_scope("acme", session=alice_session, origin=b"https://" + HOST))
    assert same.code == 0 and same.grant is not None and same.grant.organization_id == acme.pk
    assert same.grant.session_key == alice_session and same.user == alice
    # not from a browser (no Origin): the cookie was not sent by someone else's page
    assert admit(_scope("acme", session=alice_session)).code == 0


def test_no_credentials_or_an_unknown_key_is_refused(orgs: tuple[Any, Any]) -> None:
    assert admit(_scope("acme")).code == 4403
    assert admit(_scope("acme", origin=b"https://" + HOST)).code == 4403
    assert admit(_scope("acme", token="not-a-key")).code == 4401
