"""The websocket consumer driven directly: its position in the stream, who may act.

A `ChatConsumer` with a recording socket, against the real event log in Redis, so
each boundary is exact: a live batch that overlaps what the replay already sent is
written without the overlap (written whole, the client sees a frame twice); a resume
from an id ahead of the log (a client from before a Redis restart) says resync and
takes the log's current id as its position (keeping the client's id would silently
drop every later live frame below it); an integration key never acts on a help desk.
The end-to-end versions, through daphne, are in tests/chat/test_ws_e2e.py and
tests/chat/test_ws_security.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import deque
from typing import Any

import pytest

from chat.consumers import ChatConsumer
from core.events import _keys, event_append, event_log_open, serialize
from core.realtime import Batch, Frame

_org_ids = itertools.count(980_001)


class RecordingSocket:
    """Stands in for the daphne connection the hub writes prepared frames to."""

    paused = False
    is_open = True

    def __init__(self) -> None:
        self.wire = b""

    def write(self, wire: bytes) -> None:
        self.wire += wire


def _frame(event_id: int) -> Frame:
    text = json.dumps({"type": "new_message", "id": event_id, "data": "{}"})
    return Frame.from_payload(text.encode(), text)


def _live_consumer(last_sent: int) -> tuple[ChatConsumer, RecordingSocket]:
    consumer = ChatConsumer()
    socket = RecordingSocket()
    consumer.direct = socket  # type: ignore[assignment]
    consumer.live, consumer.dropped = True, False
    consumer.pending, consumer.max_pending = deque(), 100
    consumer.last_sent = last_sent
    return consumer, socket


def _written(socket: RecordingSocket, *ids: int) -> bytes:
    return b"".join(_frame(i).wire for i in ids)


def test_a_live_batch_overlapping_the_replay_is_written_without_the_overlap() -> None:
    consumer, socket = _live_consumer(last_sent=10)
    # the batch starts at the id the replay ended with: 10 was sent already
    consumer.deliver(Batch.of([(10, _frame(10)), (11, _frame(11)), (12, _frame(12))]))
    assert socket.wire == _written(socket, 11, 12)
    assert consumer.last_sent == 12


def test_a_live_batch_right_after_the_position_is_written_whole() -> None:
    consumer, socket = _live_consumer(last_sent=10)
    consumer.deliver(Batch.of([(11, _frame(11)), (12, _frame(12))]))
    assert socket.wire == _written(socket, 11, 12)
    # a batch already sent entirely writes nothing; an ephemeral frame (id 0) always goes
    typing = Frame.from_payload(b'{"type": "typing", "data": "{}"}')
    consumer.deliver(Batch.of([(11, _frame(11)), (12, _frame(12))]))
    consumer.deliver(Batch.of([(0, typing)]))
    assert socket.wire == _written(socket, 11, 12) + typing.wire
    assert consumer.last_sent == 12


@pytest.fixture
def org_id(redis_client: Any) -> int:
    organization_id = next(_org_ids)
    redis_client.delete(*_keys(organization_id))
    return organization_id


def test_a_resume_from_ahead_of_the_log_resyncs_and_keeps_later_live_frames(org_id: int) -> None:
    ids = [
        event_append(organization_id=org_id, event_type="new_message", data=serialize({"n": i}))
        for i in range(3)
    ]
    consumer, socket = _live_consumer(last_sent=0)
    sent: list[dict[str, Any]] = []

    async def send(text_data: str) -> None:
        sent.append(json.loads(text_data))

    consumer.send = send  # type: ignore[method-assign,assignment]
    # a client holding an id the log never reached (handed out before a Redis restart)
    # (`position`: what the hub's join read from the log after subscribing the socket)
    position = event_log_open(organization_id=org_id)
    asyncio.run(consumer._catch_up(org_id, ids[-1] + 1000, position))
    assert [f["type"] for f in sent] == ["resync_required", "hello"]
    assert sent[-1]["last_event_id"] == consumer.last_sent == ids[-1]
    # the next live event is delivered, not dropped as "already sent"
    consumer.deliver(Batch.of([(ids[-1] + 1, _frame(ids[-1] + 1))]))
    assert socket.wire == _written(socket, ids[-1] + 1)


@pytest.mark.parametrize("kind", ["typing", "read"])
def test_an_integration_key_never_acts_on_a_help_desk_even_with_the_agent_scope(
    kind: str,
) -> None:
    # an integration key listens for its organization; it is nobody, so it cannot type
    # or mark read, whatever scopes it was given (`agent` included)
    consumer, socket = _live_consumer(last_sent=0)
    consumer.organization_id = 1
    consumer.user = None
    consumer.key_scopes = frozenset({"read", "agent"})
    consumer.frame_limit, consumer.frame_window = 0, 1.0
    sent: list[dict[str, Any]] = []

    async def send(text_data: str) -> None:
        sent.append(json.loads(text_data))

    consumer.send = send  # type: ignore[method-assign,assignment]
    frame = json.dumps({"type": kind, "help_desk": "00000000-0000-0000-0000-000000000001"})
    asyncio.run(consumer.receive(text_data=frame))
    assert [(f["type"], f.get("code")) for f in sent] == [("error", "forbidden")]
    assert socket.wire == b""
