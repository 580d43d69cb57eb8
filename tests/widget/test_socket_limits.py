"""The visitor socket's own guards through a real daphne: a socket that never
authenticates is closed after WIDGET_AUTH_TIMEOUT, and connects are limited per visitor
(WIDGET_VISITOR_RATE) and per client address (WIDGET_IP_RATE), the public API's requests
counting in the same buckets."""

from __future__ import annotations

from typing import Any

import pytest

from tests.widget.conftest import ORIGIN
from tests.widget.test_socket import RATES, Visitor
from tests.wsclient import WS

pytestmark = pytest.mark.django_db(transaction=True)


def _bare(web: Any, inbox: Any, source: str = "127.0.0.1") -> WS:
    """A visitor socket from `source` (any 127.0.0.0/8 address is this machine)."""
    return WS(f"{web.ws_url}/ws/widget/{inbox.token}/", origin=ORIGIN, source_address=(source, 0))


def test_a_socket_that_never_authenticates_is_closed(start_web, inbox):
    web = start_web(**{**RATES, "WIDGET_AUTH_TIMEOUT": "1"})
    visitor = Visitor(web, inbox)
    # given a socket that authenticated, then one that says nothing
    authed = visitor.socket()
    assert authed.recv()["type"] == "hello"
    silent = _bare(web, inbox)
    # then the silent one is closed 4401 once the timeout passes (waited for, not slept;
    # the deadline is under the 10 s default, so the setting is what closed it)
    assert silent.close_code(timeout=8) == 4401
    # with the reason said first
    assert [f["code"] for f in silent.frames] == ["auth_timeout"], silent.frames
    assert silent.frames[0]["type"] == "error"
    # and the authenticated one, opened earlier, outlived its own timer
    authed.send({"type": "ping"})
    assert authed.recv_until(lambda f: f["type"] == "pong")["type"] == "pong"
    # a first frame that is not auth is refused at once
    chatty = _bare(web, inbox)
    chatty.send({"type": "ping"})
    assert chatty.close_code() == 4401
    authed.close()


def test_connects_are_limited_per_visitor_and_per_address(start_web, inbox):
    # a day's window: the counts cannot restart in the middle of the test
    web = start_web(**{**RATES, "WIDGET_VISITOR_RATE": "3/day", "WIDGET_IP_RATE": "6/day"})
    alice = Visitor(web, inbox)  # start: Alice 1, 127.0.0.1: 1
    for _ in range(2):  # Alice 2-3, address 2-3
        ws = alice.socket()
        assert ws.recv()["type"] == "hello"
        ws.close()

    # when Alice connects a fourth time: refused after her auth frame, 4429
    over = alice.socket()  # Alice 4, address 4
    refused = over.recv()
    assert refused["type"] == "error" and refused["code"] == "rate_limited"
    assert refused["retry_after"] > 0
    assert over.close_code() == 4429

    # another visitor on the same address is not Alice: Bob connects
    bob = Visitor(web, inbox)  # Bob 1, address 5
    ws = bob.socket()  # Bob 2, address 6
    assert ws.recv()["type"] == "hello"
    ws.close()

    # the address is spent: refused at connect, before any frame of ours
    spent = _bare(web, inbox)  # address 7
    refused = spent.recv()
    assert refused["type"] == "error" and refused["code"] == "rate_limited"
    assert spent.close_code() == 4429

    # from another address Bob (2 of his 3 used) connects: each address has its own count
    other = _bare(web, inbox, source="127.0.0.2")  # Bob 3, 127.0.0.2: 1
    other.send({"type": "auth", "token": bob.token})
    assert other.recv()["type"] == "hello"
    other.close()
