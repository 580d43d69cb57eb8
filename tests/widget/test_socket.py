"""The visitor's socket through a real daphne with real websocket clients: each visitor
gets only its own conversation (never another visitor's, never an agent-only frame),
with the log's ids, resume and resync_required; Origin and token checked."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.widget.conftest import ORIGIN
from tests.wsclient import WS, data

pytestmark = pytest.mark.django_db(transaction=True)

RATES = {
    "WIDGET_IP_RATE": "1000000/min",
    "WIDGET_VISITOR_RATE": "1000000/min",
    "WS_AUTH_RECHECK_SECONDS": "1",
}
VISITOR_TYPES = {"hello", "message", "conversation", "read", "typing", "pong", "resync_required"}


class Visitor:
    def __init__(self, web: Any, inbox: Any) -> None:
        self.web, self.inbox = web, inbox
        self.http = httpx.Client(base_url=web.url, headers={"Origin": ORIGIN}, timeout=30)
        started = self.post("start", {})
        self.token = started["visitor_token"]
        self.last_event_id = started["last_event_id"]

    def post(self, what: str, body: dict[str, Any]) -> Any:
        response = self.http.post(
            f"/widget/api/{self.inbox.token}/{what}/",
            json=body,
            headers={"X-Visitor-Token": getattr(self, "token", "")},
        )
        assert response.status_code in (200, 201, 204), response.text
        return response.json() if response.content else None

    def socket(self, last_event_id: int | None = None, origin: str = ORIGIN) -> WS:
        ws = WS(f"{self.web.ws_url}/ws/widget/{self.inbox.token}/", origin=origin)
        auth: dict[str, Any] = {"type": "auth", "token": self.token}
        if last_event_id is not None:
            auth["last_event_id"] = last_event_id
        ws.send(auth)
        return ws


def _quiet(ws: WS) -> list[dict[str, Any]]:
    """Frames the socket got before answering a ping sent now (nothing else may come)."""
    ws.send({"type": "ping"})
    before = len(ws.frames)
    ws.recv_until(lambda f: f["type"] == "pong")
    return ws.frames[before:-1]


def test_each_visitor_sees_only_its_own_conversation(start_web, inbox, agent):
    web = start_web(**RATES)
    alice, bob = Visitor(web, inbox), Visitor(web, inbox)
    a, b = alice.socket(), bob.socket()
    assert a.recv()["type"] == "hello" and b.recv()["type"] == "hello"
    staff = WS(f"{web.ws_url}/ws/chat/acme/?token={agent.key}")
    assert staff.recv()["type"] == "hello"
    api = agent.http(web.url)

    # the visitor writes: the agents get it as any message, the visitor its own copy
    sent = alice.post("messages", {"text": "Hello from Alice"})
    desk = sent["help_desk"]
    new = staff.recv_until(lambda f: f["type"] == "new_message")
    assert data(new)["message"] == "Hello from Alice"
    mine = a.recv_until(lambda f: f["type"] == "message")
    assert mine["id"] == new["id"] and mine["data"]["from"] == "visitor"

    # an agent types and replies: live on the visitor's socket, with the agent's name
    staff.send({"type": "typing", "help_desk": desk})
    typing = a.recv_until(lambda f: f["type"] == "typing")
    assert typing["data"] == {"help_desk": desk, "agent": "alice"}
    reply = api.post("/api/send-message/", data={"help_desk": desk, "message": "Hi Alice"})
    assert reply.status_code == 201, reply.text
    got = a.recv_until(lambda f: f["type"] == "message" and f["data"]["from"] == "agent")
    assert got["data"]["text"] == "Hi Alice" and got["data"]["agent"] == "alice"

    # the visitor types and reads: the agents see both
    a.send({"type": "typing"})
    visitor_typing = staff.recv_until(lambda f: f["type"] == "typing" and "visitor" in data(f))
    assert data(visitor_typing)["help_desk"] == desk
    a.send({"type": "read"})
    read = staff.recv_until(lambda f: f["type"] == "update_message")
    assert data(read)["status"] == "read"

    # agent-only changes (assignment) reach the agents, never the visitor as such
    patched = api.patch(f"/api/help-desks/{desk}/", json={"assignee": None, "status": "pending"})
    assert patched.status_code == 200, patched.text
    conv = a.recv_until(lambda f: f["type"] == "conversation" and f["data"]["status"] == "pending")
    assert set(conv["data"]) == {"help_desk", "status"}

    # the second visitor got nothing of it; the first only visitor frames
    assert _quiet(b) == []
    assert {f["type"] for f in a.frames} <= VISITOR_TYPES
    assert all("assignee" not in str(f.get("data")) for f in a.frames)
    for ws in (a, b, staff):
        ws.close()


def test_resume_resync_and_refusals(start_web, inbox, agent):
    # one daphne for both halves: its start is most of what a socket test costs
    web = start_web(**RATES)
    visitor = Visitor(web, inbox)
    desk = visitor.post("messages", {"text": "first"})["help_desk"]
    ws = visitor.socket()
    last = ws.recv()["last_event_id"]
    ws.close()
    # missed while away: one reply for this visitor, one message of another visitor
    api = agent.http(web.url)
    assert api.post("/api/send-message/", data={"help_desk": desk, "message": "missed"}).is_success
    Visitor(web, inbox).post("messages", {"text": "someone else"})
    again = visitor.socket(last_event_id=last)
    replayed = again.recv_until(lambda f: f["type"] == "hello")
    texts = [f["data"]["text"] for f in again.frames if f["type"] == "message"]
    assert texts == ["missed"]
    assert replayed["last_event_id"] > last
    again.close()
    stale = visitor.socket(last_event_id=1)
    assert stale.recv()["type"] == "resync_required"
    assert stale.recv()["type"] == "hello"
    stale.close()

    # refusals: a foreign Origin, a forged token, an unknown inbox
    # refused at connect, before any frame (so none is sent: the socket may be closed)
    evil = WS(f"{web.ws_url}/ws/widget/{inbox.token}/", origin="https://evil.example")
    assert evil.close_code() == 4403
    forged = WS(f"{web.ws_url}/ws/widget/{inbox.token}/", origin=ORIGIN)
    forged.send({"type": "auth", "token": visitor.token[:-3] + "abc"})
    assert forged.close_code() == 4401
    unknown = WS(f"{web.ws_url}/ws/widget/{'z' * 24}/", origin=ORIGIN)
    assert unknown.close_code() == 4403

    # an open socket whose inbox token is rotated (the old snippet) is closed
    from widget.inboxes import web_inbox_rotate

    open_ws = visitor.socket()
    assert open_ws.recv()["type"] == "hello"
    web_inbox_rotate(web_inbox=inbox, secret=False, token=True)
    assert open_ws.close_code(timeout=10) == 4403


def test_an_agent_reading_tells_the_visitor_which_message_not_who(start_web, inbox, agent):
    web = start_web(**RATES)
    alice, bob = Visitor(web, inbox), Visitor(web, inbox)
    first = alice.post("messages", {"text": "one"})
    second = alice.post("messages", {"text": "two"})
    bob_desk = bob.post("messages", {"text": "bob's"})["help_desk"]
    desk = first["help_desk"]
    assert alice.post("start", {"token": alice.token})["seen"] is None  # nobody read yet
    a, b = alice.socket(), bob.socket()
    hello = a.recv()
    assert hello["type"] == "hello" and b.recv()["type"] == "hello"
    api = agent.http(web.url)

    # when an agent reads Alice's conversation
    assert api.post(f"/api/help-desks/{desk}/read/").status_code == 200
    # then Alice's socket says which of her messages was read, never by whom
    read = a.recv_until(lambda f: f["type"] == "read")
    assert read["data"] == {"help_desk": desk, "message": second["uuid"]}
    assert isinstance(read["id"], int) and read["id"] > hello["last_event_id"]
    # and a reload shows it too; Bob, whose conversation nobody read, got nothing
    assert alice.post("start", {"token": alice.token})["seen"] == second["uuid"]
    assert _quiet(b) == []
    assert bob.post("start", {"token": bob.token})["seen"] is None

    # a resume replays it with its id; reading again with nothing new publishes nothing
    a.close()
    again = alice.socket(last_event_id=hello["last_event_id"])
    again.recv_until(lambda f: f["type"] == "hello")
    assert [f["id"] for f in again.frames if f["type"] == "read"] == [read["id"]]
    assert api.post(f"/api/help-desks/{desk}/read/").status_code == 200
    assert [f for f in _quiet(again) if f["type"] == "read"] == []
    # Bob's conversation read later reaches Bob, and only as his own message
    assert api.post(f"/api/help-desks/{bob_desk}/read/").status_code == 200
    assert b.recv_until(lambda f: f["type"] == "read")["data"]["help_desk"] == bob_desk
    assert [f for f in _quiet(again) if f["type"] == "read"] == []
    for ws in (again, b):
        ws.close()
