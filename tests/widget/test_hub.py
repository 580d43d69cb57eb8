"""The visitor router in process: an event reaches only the sockets of the visitor whose
conversation it is, and frames no visitor may see are skipped without being parsed."""

from __future__ import annotations

import json
from typing import Any

from core.realtime import Batch, Frame
from widget import frames
from widget.hub import DeskRouter


class FakeSocket:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def deliver(self, batch: Batch) -> bool:
        self.batches.append(batch)
        return True

    def drop(self, reason: str) -> None:
        raise AssertionError(reason)


def _frame(kind: str, event_id: int, data: dict[str, Any]) -> tuple[int, Frame]:
    text = '{"type": ' + json.dumps(kind) + ', "id": ' + str(event_id)
    text += ', "data": ' + json.dumps(json.dumps(data)) + "}"
    return event_id, Frame.from_payload(text.encode())


def _message(desk: str, text: str, kind: str = "sent") -> dict[str, Any]:
    return {
        "uuid": "00000000-0000-0000-0000-000000000001",
        "help_desk": desk,
        "message": text,
        "file": None,
        "file_name": "",
        "type": kind,
        "status": "sent",
        "sender": "alice",
        "created_at": "2026-01-01T00:00:00Z",
    }


def test_an_event_costs_the_sockets_of_one_visitor(monkeypatch):
    router = DeskRouter(organization_id=1)
    sockets = {f"client-{i}": FakeSocket() for i in range(2000)}
    for i, (client, socket) in enumerate(sockets.items()):
        router.add(client, [f"desk-{i}"], socket)
    parsed: list[str] = []
    real = frames.translate
    monkeypatch.setattr(frames, "translate", lambda i, raw: parsed.append(raw) or real(i, raw))
    batch = Batch.of(
        [
            _frame("mailing_progress", 10, {"mailing": 1}),
            _frame("new_message", 11, _message("desk-7", "hello")),
            _frame("new_note", 12, {"help_desk": "desk-7", "text": "secret note"}),
            _frame(
                "update_helpdesk",
                13,
                {
                    "uuid": "desk-9",
                    "client": {"uuid": "client-9"},
                    "status": "open",
                    "assignee": "bob",
                },
            ),
        ]
    )
    router.deliver(batch)
    # only two visitors got anything, each one batch of its own frames
    got = {c: s.batches for c, s in sockets.items() if s.batches}
    assert set(got) == {"client-7", "client-9"}
    seven = [json.loads(f.text) for _, f in got["client-7"][0].items]
    assert [(f["type"], f["id"], f["data"]["text"]) for f in seven] == [("message", 11, "hello")]
    nine = json.loads(got["client-9"][0].items[0][1].text)
    assert nine == {
        "type": "conversation",
        "id": 13,
        "data": {"help_desk": "desk-9", "status": "open"},
    }
    # the mailing and the note were never parsed (prefix test), the rest once each
    assert len(parsed) == 2


def test_a_new_desk_of_a_connected_visitor_is_learnt():
    router = DeskRouter(organization_id=1)
    socket = FakeSocket()
    router.add("client-1", [], socket)
    router.deliver(Batch.of([_frame("new_message", 5, _message("desk-new", "lost?"))]))
    assert socket.batches == []  # unknown desk: nobody's
    router.deliver(
        Batch.of(
            [
                _frame(
                    "update_helpdesk",
                    6,
                    {"uuid": "desk-new", "client": {"uuid": "client-1"}, "status": "open"},
                ),
                _frame("new_message", 7, _message("desk-new", "found", kind="received")),
            ]
        )
    )
    items = [json.loads(f.text) for _, f in socket.batches[0].items]
    assert [f["type"] for f in items] == ["conversation", "message"]
    assert items[1]["data"]["from"] == "visitor"
    router.remove("client-1", socket)
    assert router.desks == {} and router.sockets == {}


def test_an_agents_read_mark_reaches_its_visitor_without_the_agent():
    router = DeskRouter(organization_id=1)
    socket = FakeSocket()
    router.add("client-1", ["desk-1"], socket)
    router.deliver(
        Batch.of(
            [
                # an SMS desk's mark (no message named) and another desk's: nobody's
                _frame("help_desk_read", 8, {"help_desk": "desk-1", "agent": 3}),
                _frame("help_desk_read", 9, {"help_desk": "desk-2", "agent": 3, "message": "m"}),
                _frame("help_desk_read", 10, {"help_desk": "desk-1", "agent": 3, "message": "m1"}),
            ]
        )
    )
    [batch] = socket.batches
    assert [json.loads(f.text) for _, f in batch.items] == [
        {"type": "read", "id": 10, "data": {"help_desk": "desk-1", "message": "m1"}}
    ]
