"""The websocket as an attacker sees it, through a real daphne and a real client.

Anonymous visitors and unknown tokens probing for organizations, leaked keys without
the right scope, credentials revoked while a socket is open, connect and frame floods,
and malformed `last_event_id` values (docs/security.md, chat/ws_auth.py).
"""

from __future__ import annotations

import os

import pytest
from django.utils import timezone
from websockets.exceptions import ConnectionClosed

from core.events import event_append
from tests.conftest import wait_until
from tests.wsclient import WS, data

pytestmark = pytest.mark.django_db(transaction=True)


def _url(web, slug, key=None, **query):
    params = ([f"token={key}"] if key else []) + [f"{k}={v}" for k, v in query.items()]
    return f"{web.ws_url}/ws/chat/{slug}/" + ("?" + "&".join(params) if params else "")


def _subscribers() -> float:
    """`ws_subscribers` summed over the live web processes, read from the multiprocess
    files the servers of this test write (what /metrics shows, without its auth)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    for metric in registry.collect():
        if metric.name == "ws_subscribers":
            return sum(sample.value for sample in metric.samples)
    return 0.0


def _forget_connect_counts(redis_client) -> None:
    for key in redis_client.scan_iter("rl:ws-connect:*"):
        redis_client.delete(key)


# --- who learns what about organizations ----------------------------------------------------


def test_outsiders_get_the_same_answer_for_existing_and_unknown_organizations(
    start_web, agent, make_agent, make_org
):
    web = start_web()
    outsider = make_agent("mallory", make_org("evil"))
    for slug in ("acme", "nosuch", "No_Such.Org"):
        # an anonymous socket, an unknown token, another tenant's agent: one answer each,
        # whether the organization exists or not
        assert WS(_url(web, slug)).close_code() == 4403, slug
        assert WS(_url(web, slug, "not-a-key")).close_code() == 4401, slug
        assert WS(_url(web, slug, outsider.key)).close_code() == 4403, slug
    # while the organization's own agent gets in
    assert WS(_url(web, "acme", agent.key)).recv()["type"] == "hello"


# --- scopes -----------------------------------------------------------------------------


def test_key_scopes_decide_who_listens_and_who_acts(start_web, agent, make_agent, help_desk):
    from core.services import api_key_create

    web = start_web()
    org = agent.organization
    _, bot_default = api_key_create(name="bot", organization=org)
    _, bot_reader = api_key_create(name="dashboard", organization=org, scopes=["read"])
    _, alice_reader = api_key_create(name="alice-ro", user=agent.user, scopes=["read"])
    bob = make_agent("bob", org)
    bob_ws = WS(_url(web, org.slug, bob.key))
    bob_ws.recv()

    # an integration key with its default scopes (triggers, assistance, inbound) cannot listen
    assert WS(_url(web, org.slug, bot_default)).close_code() == 4403
    # keys with `read` listen, but without `agent` they cannot type or mark read
    for key in (bot_reader, alice_reader):
        ws = WS(_url(web, org.slug, key))
        assert ws.recv()["type"] == "hello"
        for kind in ("typing", "read"):
            ws.send({"type": kind, "help_desk": str(help_desk.uuid)})
            assert ws.recv_until(lambda f: f["type"] == "error")["code"] == "forbidden"
    # and nothing reached the organization's agents
    bob_ws.send({"type": "ping"})
    assert bob_ws.recv_until(lambda f: f["type"] in ("pong", "typing"))["type"] == "pong"


# --- revocation reaches open sockets ----------------------------------------------------------


def _revoke_key(agent, session_key):
    from core.models import ApiKey

    ApiKey.objects.filter(user=agent.user).update(revoked_at=timezone.now())


def _drop_read_scope(agent, session_key):
    from core.models import ApiKey

    ApiKey.objects.filter(user=agent.user).update(scopes=["agent"])


def _deactivate_user(agent, session_key):
    agent.user.is_active = False
    agent.user.save(update_fields=["is_active"])


def _delete_membership(agent, session_key):
    from core.models import Membership

    Membership.objects.filter(user=agent.user, organization=agent.organization).delete()


def _log_out(agent, session_key):
    from django.contrib.sessions.models import Session

    Session.objects.filter(session_key=session_key).delete()


@pytest.mark.parametrize(
    ("how", "via", "code"),
    [
        (_revoke_key, "key", 4401),
        (_deactivate_user, "key", 4401),
        (_drop_read_scope, "key", 4403),
        (_delete_membership, "key", 4403),
        (_deactivate_user, "session", 4403),
        (_delete_membership, "session", 4403),
        (_log_out, "session", 4403),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_losing_access_closes_open_sockets(start_web, agent, make_agent, how, via, code):
    from django.conf import settings
    from django.test import Client

    # given alice connected (by key or by session cookie) and bob, who keeps his access
    web = start_web(WS_AUTH_RECHECK_SECONDS="0.5")
    bob = make_agent("bob", agent.organization)
    session_key = None
    if via == "key":
        alice = WS(_url(web, "acme", agent.key))
    else:
        browser = Client()
        browser.force_login(agent.user)
        session_key = browser.cookies[settings.SESSION_COOKIE_NAME].value
        alice = WS(
            _url(web, "acme"),
            additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session_key}"},
        )
    bob_ws = WS(_url(web, "acme", bob.key))
    assert alice.recv()["type"] == "hello"
    bob_ws.recv()

    # when alice loses access, by a plain database write (as the admin or SQL would)
    how(agent, session_key)

    # then her socket is closed within a few recheck intervals, with the documented code
    assert alice.close_code(timeout=15) == code
    # and bob's socket is untouched
    bob_ws.send({"type": "ping"})
    assert bob_ws.recv()["type"] == "pong"
    # and the closed socket left the hub
    wait_until(lambda: _subscribers() == 1, timeout=10)


def test_revoking_a_key_closes_its_sockets_in_every_web_process(start_web, agent):
    webs = [start_web(WS_AUTH_RECHECK_SECONDS="0.5") for _ in range(2)]
    sockets = [WS(_url(web, "acme", agent.key)) for web in webs for _ in range(2)]
    for ws in sockets:
        assert ws.recv()["type"] == "hello"

    _revoke_key(agent, None)

    assert [ws.close_code(timeout=15) for ws in sockets] == [4401] * len(sockets)
    wait_until(lambda: _subscribers() == 0, timeout=10)


# --- rate limits ------------------------------------------------------------------------


def _connect_until_refused(url, attempts):
    """Connect up to `attempts` times; (close codes before the refusal, refusal frame)."""
    codes = []
    for _ in range(attempts):
        ws = WS(url)
        try:
            first = ws.recv()
        except ConnectionClosed as exc:
            codes.append(exc.rcvd.code if exc.rcvd else None)
            continue
        if first["type"] == "error":
            assert ws.close_code() == 4429
            return codes, first
        codes.append(first["type"])
        ws.close()
    raise AssertionError(f"never refused in {attempts} connects: {codes}")


def test_connect_flood_is_refused_per_principal_and_per_ip(start_web, agent, redis_client):
    web = start_web(WS_CONNECT_RATE="4/min")
    _forget_connect_counts(redis_client)

    # a fixed window lets through at most twice the limit across a boundary
    codes, refusal = _connect_until_refused(_url(web, "acme", agent.key), attempts=9)
    assert 4 <= len(codes) <= 8 and set(codes) == {"hello"}, codes
    assert refusal["code"] == "rate_limited" and refusal["retry_after"] > 0

    codes, refusal = _connect_until_refused(_url(web, "acme"), attempts=9)
    assert 4 <= len(codes) <= 8 and set(codes) == {4403}, codes
    assert refusal["code"] == "rate_limited"

    # an anonymous flood from the same address does not lock out a key holder
    from core.services import api_key_create

    _, other_key = api_key_create(name="alice-2", user=agent.user)
    assert WS(_url(web, "acme", other_key)).recv()["type"] == "hello"


def test_frame_flood_gets_an_error_then_is_closed(start_web, agent):
    web = start_web(WS_FRAME_RATE="10/min")
    ws = WS(_url(web, "acme", agent.key))
    ws.recv()

    # Exactly twice the limit: the 20th frame closes the socket. A frame sent after the
    # server closed would be answered with a TCP reset, which makes the client's kernel
    # drop what it had not read yet (the pongs, the error frame, the close): a flaky test.
    for _ in range(20):
        try:
            ws.send({"type": "ping"})
        except ConnectionClosed:
            break

    try:
        while True:
            ws.recv()
    except ConnectionClosed as exc:
        assert exc.rcvd is not None and exc.rcvd.code == 4429
    kinds = [f["type"] for f in ws.frames[1:]]
    assert kinds == ["pong"] * 10 + ["error"], kinds
    assert ws.frames[-1]["code"] == "rate_limited"


def test_typing_is_coalesced_per_help_desk(start_web, agent, make_agent, help_desk):
    web = start_web(WS_TYPING_INTERVAL="60")
    bob = make_agent("bob", agent.organization)
    alice_ws, bob_ws = WS(_url(web, "acme", agent.key)), WS(_url(web, "acme", bob.key))
    alice_ws.recv(), bob_ws.recv()

    for _ in range(5):
        alice_ws.send({"type": "typing", "help_desk": str(help_desk.uuid)})
    alice_ws.send({"type": "ping"})
    alice_ws.recv_until(lambda f: f["type"] == "pong")  # every typing frame was handled
    # a marker through the same pub/sub channel, after every typing broadcast
    marker = event_append(
        organization_id=agent.organization.pk, event_type="update_message", data="{}"
    )

    bob_ws.recv_until(lambda f: f.get("id") == marker)
    typing = [f for f in bob_ws.frames if f["type"] == "typing"]
    assert len(typing) == 1
    assert data(typing[0])["help_desk"] == str(help_desk.uuid)
    assert not [f for f in alice_ws.frames if f["type"] == "error"]  # dropped silently


# --- last_event_id ------------------------------------------------------------------------

BAD_LAST_EVENT_IDS = [
    "99999999999999999999999",
    "9" * 400,
    "9007199254740992",  # 2**53
    "-1",
    "abc",
    "1e9",
    "0x10",
    "%C2%B2",  # superscript two: str.isdigit() says yes, int() says no
    "%D9%A1",  # Arabic-Indic one
    "1%00",
    "%20%201",
]


def test_bad_last_event_id_is_an_error_frame_and_leaves_nothing_in_the_hub(start_web, agent):
    web = start_web(WS_CONNECT_RATE="0/min")
    good = [WS(_url(web, "acme", agent.key)) for _ in range(5)]
    for ws in good:
        assert ws.recv()["type"] == "hello"

    for value in BAD_LAST_EVENT_IDS:
        ws = WS(_url(web, "acme", agent.key, last_event_id=value))
        error = ws.recv()
        assert error["type"] == "error" and error["code"] == "bad_last_event_id", (value, error)
        assert ws.close_code() == 4400, value  # never 1011
    # two values for one parameter are ambiguous too
    ws = WS(_url(web, "acme", agent.key) + "&last_event_id=1&last_event_id=2")
    assert ws.recv()["code"] == "bad_last_event_id"
    # sockets that go away in the middle of the connect
    for _ in range(5):
        WS(_url(web, "acme", agent.key, last_event_id=0)).close()

    # the good ones are still counted, and every refused or vanished one is gone
    wait_until(lambda: _subscribers() == len(good), timeout=10)
    for ws in good:
        ws.close()
    wait_until(lambda: _subscribers() == 0, timeout=10)


def test_last_event_id_ahead_of_the_log_resyncs_and_keeps_live_frames(start_web, agent):
    web = start_web()
    org_id = agent.organization.pk
    current = event_append(organization_id=org_id, event_type="update_message", data="{}")

    ws = WS(_url(web, "acme", agent.key, last_event_id=current + 1000))
    assert ws.recv()["type"] == "resync_required"
    assert ws.recv() == {"type": "hello", "last_event_id": current}

    # later live events are below the client's claimed id but must not be skipped
    after = event_append(organization_id=org_id, event_type="update_message", data="{}")
    assert ws.recv_until(lambda f: "id" in f)["id"] == after
