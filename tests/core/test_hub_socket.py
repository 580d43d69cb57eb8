"""core/hub_socket.py's rules, on a bare HubSocket with a recording transport.

The rules both the agents' and the visitors' sockets rely on: a logged frame is written
once (a live batch overlapping the replay, or a queued frame seen twice, is skipped by
id), an ephemeral frame (id 0) always goes, the queue is bounded (deliver answers False
and keeps nothing of the batch), a flush stops when the transport pushes back and
resumes in order, the writer task (no DirectSocket) follows the same rules, and a frame
flood logs `ws_frame_flood` with the subclass's ids and closes 4429 once.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from core.hub_socket import HubSocket
from core.realtime import Batch, Frame


class Transport:
    """Stands in for the DirectSocket: records writes, pauses after `room` writes."""

    is_open = True

    def __init__(self, room: int = 1_000) -> None:
        self.room = room
        self.writes: list[bytes] = []
        self.on_resume: Any = None

    @property
    def paused(self) -> bool:
        return len(self.writes) >= self.room

    def write(self, wire: bytes) -> None:
        self.writes.append(wire)


class Socket(HubSocket):
    def __init__(self) -> None:
        super().__init__()
        self.left = 0
        self.closed: list[int] = []
        self.sent: list[str] = []

    async def _leave(self) -> None:
        self.left += 1

    def _log_context(self) -> dict[str, Any]:
        return {"organization_id": 7}

    async def close(self, code: Any = None, reason: Any = None) -> None:
        self.closed.append(code)

    async def send(self, text_data: Any = None, bytes_data: Any = None, close: Any = False) -> None:
        self.sent.append(text_data)


def _frame(event_id: int) -> Frame:
    text = json.dumps({"type": "new_message", "id": event_id})
    return Frame.from_payload(text.encode(), text)


TYPING = Frame.from_payload(b'{"type": "typing"}')


def _batch(*ids: int) -> Batch:
    return Batch.of([(i, TYPING if i == 0 else _frame(i)) for i in ids])


def _wire(*ids: int) -> bytes:
    return b"".join(TYPING.wire if i == 0 else _frame(i).wire for i in ids)


def _socket(transport: Transport | None, *, last_sent: int = 0, max_pending: int = 100) -> Socket:
    socket = Socket()
    socket.scope = {}
    socket._init_socket()
    socket.direct = transport  # type: ignore[assignment]
    socket.last_sent, socket.max_pending = last_sent, max_pending
    return socket


def test_a_logged_frame_is_written_once_and_an_ephemeral_one_always() -> None:
    transport = Transport()
    socket = _socket(transport, last_sent=10)
    socket._go_live()
    # a batch overlapping what the replay sent: only what is new
    assert socket.deliver(_batch(9, 10, 11, 0, 12))
    # then one write for a batch entirely after the position
    assert socket.deliver(_batch(13, 14))
    # a batch already sent writes nothing; a typing frame goes whatever the position
    assert socket.deliver(_batch(13, 14))
    assert socket.deliver(_batch(0))
    assert b"".join(transport.writes) == _wire(11, 0, 12, 13, 14, 0)
    assert transport.writes[-2:] == [_wire(13, 14), _wire(0)]
    assert socket.last_sent == 14


def test_frames_queued_during_the_replay_go_out_in_order_without_duplicates() -> None:
    transport = Transport()
    socket = _socket(transport, last_sent=0)
    # not live yet (replaying): queued, nothing written
    assert socket.deliver(_batch(5, 6))
    assert socket.deliver(_batch(0, 7))
    assert transport.writes == []
    # the replay ended at 6: going live flushes the rest, typing included
    socket.last_sent = 6
    socket._go_live()
    assert b"".join(transport.writes) == _wire(0, 7)
    assert transport.on_resume == socket._flush
    assert not socket.pending and socket.last_sent == 7


def test_the_queue_is_bounded_and_a_full_one_keeps_nothing_of_the_batch() -> None:
    transport = Transport(room=0)  # the client stopped reading
    socket = _socket(transport, max_pending=3)
    socket._go_live()
    assert socket.deliver(_batch(1, 2))
    assert socket.deliver(_batch(3))
    assert socket.deliver(_batch(4)) is False
    assert [event_id for event_id, _ in socket.pending] == [1, 2, 3]
    assert transport.writes == []


def test_a_flush_stops_when_the_transport_pushes_back_and_resumes_in_order() -> None:
    transport = Transport(room=2)
    socket = _socket(transport)
    assert socket.deliver(_batch(1, 2, 3, 4, 5))  # queued: not live yet
    socket._go_live()
    assert transport.writes == [_wire(1), _wire(2)]
    # paused: a live batch queues behind the rest instead of overtaking it
    assert socket.deliver(_batch(6))
    assert [event_id for event_id, _ in socket.pending] == [3, 4, 5, 6]
    transport.room = 4
    transport.on_resume()
    assert b"".join(transport.writes) == _wire(1, 2, 3, 4)
    transport.room = 100
    transport.on_resume()
    assert b"".join(transport.writes) == _wire(1, 2, 3, 4, 5, 6)
    assert not socket.pending


def test_a_dropped_socket_stops_sending_and_closes_once() -> None:
    async def run() -> Socket:
        transport = Transport(room=0)
        socket = _socket(transport)
        socket._go_live()
        socket.deliver(_batch(1))
        socket.drop("slow")
        socket.drop("stream")  # the second drop is a no-op
        assert socket.deliver(_batch(2))  # still "delivered": the hub counted it already
        assert not socket.pending and not socket.live
        transport.room = 100
        socket._flush()
        assert transport.writes == []
        await asyncio.sleep(0)  # the close runs as a task (the hub's reader must not wait)
        return socket

    socket = asyncio.run(run())
    assert socket.closed == [4408] and socket.left == 1


def test_without_a_direct_socket_the_writer_task_follows_the_same_rules() -> None:
    async def run() -> Socket:
        socket = _socket(None, last_sent=0)
        socket.deliver(_batch(1, 2))
        socket.last_sent = 1  # the replay sent 1
        socket._go_live()
        socket.deliver(_batch(2, 0, 3))
        deadline = asyncio.get_running_loop().time() + 5
        while len(socket.sent) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0)
        await socket.disconnect(1000)
        return socket

    socket = asyncio.run(run())
    assert socket.sent == [_frame(2).text, TYPING.text, _frame(3).text]
    assert socket.last_sent == 3 and socket.left == 1


def test_a_frame_flood_is_logged_with_the_subclass_ids_and_closed_4429_once(caplog: Any) -> None:
    caplog.set_level("WARNING")
    socket = _socket(Transport())
    socket.frame_limit, socket.frame_window = 3, 60.0

    async def frames(n: int) -> list[bool]:
        return [await socket._within_frame_rate() for _ in range(n)]

    allowed = asyncio.run(frames(10))
    assert allowed == [True] * 3 + [False] * 7
    errors = [json.loads(text) for text in socket.sent]
    assert [(e["type"], e["code"]) for e in errors] == [("error", "rate_limited")]
    assert socket.closed == [4429] and socket.left == 1 and socket.dropped
    floods = [r.msg for r in caplog.records if isinstance(r.msg, dict)]
    floods = [m for m in floods if m["event"] == "ws_frame_flood"]
    assert len(floods) == 1 and floods[0]["organization_id"] == 7
