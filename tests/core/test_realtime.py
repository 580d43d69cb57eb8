"""The event log (core.events) and the hub (core.realtime) against a real Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import itertools
import json
import uuid
from typing import Any

import msgpack
import pytest

from core.events import (
    _keys,
    ephemeral_frame,
    event_append,
    live_channel,
    replay_since,
    serialize,
)
from core.realtime import WS_DROPPED, Batch, Frame, Hub, encode_frame
from tests.conftest import wait_until

_org_ids = itertools.count(900_001)


def _frame(text: str) -> Frame:
    return Frame.from_payload(text.encode(), text)


@pytest.fixture
def org_id(redis_client: Any) -> int:
    """A fresh organization id whose log is empty (no database row needed)."""
    organization_id = next(_org_ids)
    redis_client.delete(*_keys(organization_id))
    return organization_id


def _append(org_id: int, n: int, *, kind: str = "new_message") -> list[int]:
    return [
        event_append(organization_id=org_id, event_type=kind, data=serialize({"n": i}))
        for i in range(n)
    ]


def _redis_micros(client: Any) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def _n(frame: str) -> int:
    return int(json.loads(json.loads(frame)["data"])["n"])


# --- the event log ----------------------------------------------------------------------------


def test_ids_increase_per_organization_and_are_contiguous(org_id):
    other = next(_org_ids)
    ids = _append(org_id, 5)
    other_ids = _append(other, 3)
    ids += _append(org_id, 2)

    assert ids == list(range(ids[0], ids[0] + 7))  # one organization: contiguous
    assert other_ids == list(range(other_ids[0], other_ids[0] + 3))  # its own counter


def test_replay_returns_exactly_the_missed_frames_in_order(org_id):
    ids = _append(org_id, 6)

    replay = replay_since(organization_id=org_id, last_event_id=ids[2])

    assert not replay.resync
    assert [event_id for event_id, _ in replay.frames] == ids[3:]
    assert [_n(frame) for _, frame in replay.frames] == [3, 4, 5]
    first = json.loads(replay.frames[0][1])
    assert first["type"] == "new_message" and first["id"] == ids[3]


def test_replay_from_the_latest_id_is_empty_and_from_the_future_is_resync(org_id):
    ids = _append(org_id, 3)

    assert replay_since(organization_id=org_id, last_event_id=ids[-1]).frames == []
    assert not replay_since(organization_id=org_id, last_event_id=ids[-1]).resync
    assert replay_since(organization_id=org_id, last_event_id=ids[-1] + 5).resync


def test_replay_from_a_trimmed_id_says_resync(org_id, redis_client):
    ids = _append(org_id, 10)
    redis_client.xtrim(
        _keys(org_id)[1], maxlen=4, approximate=False
    )  # what retention does to old entries

    assert replay_since(organization_id=org_id, last_event_id=ids[2]).resync
    kept = replay_since(organization_id=org_id, last_event_id=ids[5])
    assert not kept.resync
    assert [event_id for event_id, _ in kept.frames] == ids[6:]


def test_counter_reset_says_resync_and_new_ids_stay_above_old_ones(org_id, redis_client):
    old = _append(org_id, 3)
    # a Redis restart without persistence: the organization's keys are gone. A restart
    # takes at least a millisecond (the seed's guarantee is 10,000 ids/s on average).
    start = _redis_micros(redis_client)
    wait_until(lambda: _redis_micros(redis_client) > start + 1000)
    redis_client.delete(*_keys(org_id)[:3])

    # nothing logged since the restart: a client that saw events must resync
    assert replay_since(organization_id=org_id, last_event_id=old[-1]).resync

    new = _append(org_id, 2)
    assert new[0] > old[-1]
    assert new[1] == new[0] + 1
    # what happened between the restart and the first new event is lost: resync
    assert replay_since(organization_id=org_id, last_event_id=old[-1]).resync
    # a client that connected after the restart replays normally
    after = replay_since(organization_id=org_id, last_event_id=new[0])
    assert not after.resync
    assert [event_id for event_id, _ in after.frames] == [new[1]]


def test_payloads_round_trip_through_msgpack(org_id, redis_client):
    data = {
        "at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "amount": decimal.Decimal("1.50"),
        "text": "olá",
    }
    payload = serialize(data)
    (event_id,) = [event_append(organization_id=org_id, event_type="new_message", data=payload)]
    (_, frame), *_ = replay_since(organization_id=org_id, last_event_id=event_id - 1).frames

    for value in (payload, frame, ephemeral_frame("typing", data)):
        assert msgpack.unpackb(msgpack.packb(value)) == value
    decoded = json.loads(json.loads(frame)["data"])
    assert decoded == {
        "at": "2026-01-02T03:04:05Z",
        "uuid": "12345678-1234-5678-1234-567812345678",
        "amount": "1.50",
        "text": "olá",
    }


# --- frames and the hub -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_wire_frames_follow_rfc6455_lengths(size):
    payload = b"x" * size
    wire = encode_frame(payload)

    assert wire[0] == 0x81  # FIN + text
    if size < 126:
        assert wire[1] == size and wire[2:] == payload
    elif size < 65536:
        assert wire[1] == 126 and int.from_bytes(wire[2:4], "big") == size
        assert wire[4:] == payload
    else:
        assert wire[1] == 127 and int.from_bytes(wire[2:10], "big") == size
        assert wire[10:] == payload


class FakeSubscriber:
    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self.items: list[tuple[int, Frame]] = []
        self.batches = 0
        self.dropped: list[str] = []

    def deliver(self, batch: Batch) -> bool:
        if len(self.items) + len(batch.items) > self.capacity:
            return False
        assert batch.wire == b"".join(f.wire for _, f in batch.items)
        self.items.extend(batch.items)
        self.batches += 1
        return True

    def drop(self, reason: str) -> None:
        self.dropped.append(reason)


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_hub_hands_every_local_subscriber_the_same_frames_in_order(org_id):
    async def scenario() -> tuple[list[int], FakeSubscriber, FakeSubscriber, FakeSubscriber]:
        hub = Hub()
        a, b, full = FakeSubscriber(), FakeSubscriber(), FakeSubscriber(capacity=2)
        for s in (a, b, full):
            await hub.join(org_id, s)
        ids = await asyncio.to_thread(_append, org_id, 20)
        await _until(lambda: len(a.items) == 20 and len(b.items) == 20)
        await hub.leave(org_id, a)
        await hub.leave(org_id, b)
        await hub.leave(org_id, full)
        assert hub.subscriber_count(org_id) == 0
        return ids, a, b, full

    dropped_before = WS_DROPPED.labels("slow")._value.get()
    ids, a, b, full = asyncio.run(scenario())

    assert [event_id for event_id, _ in a.items] == ids
    assert [_n(f.text) for _, f in a.items] == list(range(20))
    # the same Frame objects: encoded once for everyone
    assert all(x is y for (_, x), (_, y) in zip(a.items, b.items, strict=True))
    # a subscriber that cannot take more is dropped, and the drop is counted
    assert "slow" in full.dropped
    assert WS_DROPPED.labels("slow")._value.get() > dropped_before


def test_hub_ignores_other_organizations(org_id):
    other = next(_org_ids)

    async def scenario() -> FakeSubscriber:
        hub = Hub()
        mine = FakeSubscriber()
        await hub.join(org_id, mine)
        await asyncio.to_thread(_append, other, 3)
        await asyncio.to_thread(_append, org_id, 1)
        await _until(lambda: len(mine.items) == 1)
        await hub.leave(org_id, mine)
        return mine

    mine = asyncio.run(scenario())
    assert _n(mine.items[0][1].text) == 0
    assert live_channel(org_id) != live_channel(other)


# --- direct writes ----------------------------------------------------------------------------


class FakeTransport:
    """The attributes of a Twisted TCP transport that DirectSocket reads."""

    def __init__(self, sock: Any) -> None:
        self.socket = sock
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0
        self.connected = 1
        self.disconnecting = False
        self.buffered: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.buffered.append(data)


class FakeProtocol:
    STATE_CLOSED, STATE_OPEN = 0, 3

    def __init__(self, transport: FakeTransport) -> None:
        self.transport = transport
        self.state = self.STATE_OPEN
        self.send_queue: list[Any] = []
        self.sent_data: list[bytes] = []

    def sendData(self, data: bytes) -> None:  # autobahn's name
        self.sent_data.append(data)


def test_direct_socket_writes_to_the_kernel_only_when_nothing_is_buffered():
    import socket

    from core.daphne_support import DirectSocket

    a, b = socket.socketpair()
    a.setblocking(False)
    transport = FakeTransport(a)
    protocol = FakeProtocol(transport)
    direct = DirectSocket(protocol)
    first, second = _frame('{"n": 1}'), _frame('{"n": 2}')

    # empty buffer: straight to the socket
    direct.write(first.wire)
    assert b.recv(100) == first.wire
    # something already buffered in Twisted: behind it, through autobahn
    transport._tempDataLen = 10
    direct.write(second.wire)
    assert protocol.sent_data == [second.wire]
    # connection lost before the consumer left the hub (Twisted deleted `socket`):
    # a no-op, not an AttributeError that would take the hub's reader down
    del transport.socket
    transport.connected = 0
    protocol.state = protocol.STATE_CLOSED
    direct.write(first.wire)
    assert protocol.sent_data == [second.wire]
    a.close()
    b.close()


class BrokenSubscriber(FakeSubscriber):
    def deliver(self, batch: Batch) -> bool:
        raise AttributeError("socket")


def test_a_subscriber_that_raises_is_dropped_and_the_others_still_receive(org_id):
    async def scenario() -> tuple[FakeSubscriber, BrokenSubscriber]:
        hub = Hub()
        good, broken = FakeSubscriber(), BrokenSubscriber()
        await hub.join(org_id, broken)
        await hub.join(org_id, good)
        await asyncio.to_thread(_append, org_id, 3)
        await _until(lambda: len(good.items) == 3)
        return good, broken

    good, broken = asyncio.run(scenario())
    assert [_n(f.text) for _, f in good.items] == [0, 1, 2]
    assert "error" in broken.dropped
