"""core/daphne_support.py: the daphne/Twisted/autobahn internals it relies on still apply.

- On a real daphne, the hub's frames reach a real websocket client through the direct
  write path (`ws_frames_written_total{path="direct"}` in /metrics): the ASGI `send` is
  still recognised as daphne's `handle_reply`, autobahn's protocol still has the state
  read, and Twisted's TCP transport still has the buffer attributes. If any of them
  changed, the frames would still arrive (through the fallbacks), so only this counter
  shows the shortcut is gone.
- On the same daphne, a body declared past MAX_REQUEST_BODY is answered 413 before it is
  sent (daphne's `WebRequest` replaced); chunked bodies are in
  tests/core/test_bounded_input.py, the memoized Content-Type parsing in
  tests/escalation/test_fastpath.py.
- In process, with an ASGI `send` shaped like daphne's: recognised, frames go to the
  socket; with the recognition monkeypatched away, the consumer's fallback (its writer
  task, through the ASGI `send`) still delivers every frame.
- prometheus_client's `values.ValueClass`, replaced by core/metrics.py, is still what
  metrics are built from (an RQ work horse writes its parent's file).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
from typing import Any

import httpx
import pytest

from core import daphne_support
from core.events import event_append, serialize
from tests.conftest import METRICS_AUTH, wait_until
from tests.core.test_bounded_input import DECLARED, _connect, _read_response, _spooled_files
from tests.wsclient import WS


def _metric(web: Any, name: str, labels: str) -> float:
    text = httpx.get(f"{web.url}/metrics", headers=METRICS_AUTH, timeout=5).text
    wanted = f"{name}{{{labels}}} "
    for line in text.splitlines():
        if line.startswith(wanted):
            return float(line.split()[-1])
    return 0.0


def _append(organization_id: int, n: int) -> int:
    return event_append(
        organization_id=organization_id, event_type="new_message", data=serialize({"n": n})
    )


@pytest.mark.django_db(transaction=True)
def test_on_a_real_daphne_frames_take_the_direct_path_and_huge_bodies_are_refused(start_web, agent):
    # given a daphne on the real ASGI app and an agent's websocket, past its hello
    web = start_web(MAX_REQUEST_BODY="200000")
    org = agent.organization
    ws = WS(f"{web.ws_url}/ws/chat/{org.slug}/?token={agent.key}")
    assert ws.recv()["type"] == "hello"
    # when events are published, one after the other as the client reads them
    for n in range(3):
        event_id = _append(org.id, n)
        frame = ws.recv_until(lambda f, event_id=event_id: f.get("id") == event_id)
        assert json.loads(frame["data"]) == {"n": n}
    # then at least one of those writes went straight to the kernel (the buffer is empty
    # between two frames a client has read), counted once the event loop turned
    wait_until(lambda: _metric(web, "ws_frames_written_total", 'path="direct"') >= 1, timeout=10)
    ws.close()

    # given headers declaring 256 MiB and only a few bytes of body, no credentials
    spooled_before = _spooled_files(web.process.pid)
    sock = _connect(web)
    sock.sendall(
        b"POST /api/clients/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(DECLARED).encode() + b'\r\n\r\n{"a": '
    )
    # when the client waits, sending nothing more
    answer = _read_response(sock)
    # then 413 with the JSON error shape, while the body was never sent
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:200]
    assert json.loads(body)["error"]["code"] == "request_too_large"
    # and no temporary file was opened for it (the connection is still open here)
    assert _spooled_files(web.process.pid) == spooled_before
    sock.close()


# --- in process: daphne's `send` recognised, or not ------------------------------------------


class FakeTransport:
    """A Twisted TCP transport as DirectSocket sees it: an empty buffer over a real socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0
        self.connected = 1
        self.disconnecting = False
        self.producer: Any = None

    def write(self, data: bytes) -> None:
        raise AssertionError("the kernel takes these small frames whole")

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None


class FakeProtocol:
    """What daphne binds its `send` to: autobahn's protocol, open."""

    STATE_OPEN = 3

    def __init__(self, transport: FakeTransport) -> None:
        self.transport = transport
        self.state = self.STATE_OPEN
        self.send_queue: list[Any] = []
        self.asgi: list[dict[str, Any]] = []

    def sendData(self, data: bytes) -> None:
        raise AssertionError("nothing is buffered, so nothing goes through autobahn")


async def handle_reply(protocol: FakeProtocol, message: dict[str, Any]) -> None:
    """Named like daphne's `Server.handle_reply`, which daphne binds with `partial`."""
    protocol.asgi.append(message)


def _unframe(wire: bytes) -> list[dict[str, Any]]:
    """The complete unmasked server text frames at the start of `wire`, parsed."""
    frames, at = [], 0
    while at + 2 <= len(wire):
        length, head = wire[at + 1] & 0x7F, 2
        if length == 126:
            length, head = int.from_bytes(wire[at + 2 : at + 4], "big"), 4
        elif length == 127:
            length, head = int.from_bytes(wire[at + 2 : at + 10], "big"), 10
        if at + head + length > len(wire):
            break
        assert wire[at] == 0x81, wire[at : at + 20]  # final text frame
        frames.append(json.loads(wire[at + head : at + head + length]))
        at += head + length
    return frames


def _texts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(m["text"]) for m in messages if m["type"] == "websocket.send"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("recognised", [True, False], ids=["direct", "fallback"])
def test_frames_arrive_whether_or_not_daphnes_send_is_recognised(
    agent: Any, monkeypatch: pytest.MonkeyPatch, recognised: bool
) -> None:
    from core.asgi import application

    if not recognised:  # as if daphne renamed handle_reply or autobahn its state
        monkeypatch.setattr(daphne_support, "daphne_protocol", lambda send: None)
    org = agent.organization
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(10)
    protocol = FakeProtocol(FakeTransport(ours))
    scope = {
        "type": "websocket",
        "path": f"/ws/chat/{org.slug}/",
        "query_string": f"token={agent.key}".encode(),
        "headers": [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
    }

    async def scenario() -> tuple[list[int], bytes]:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await inbox.put({"type": "websocket.connect"})
        app = asyncio.ensure_future(
            application(scope, inbox.get, functools.partial(handle_reply, protocol))
        )

        async def until(predicate: Any) -> None:
            async with asyncio.timeout(15):
                while not predicate():
                    await asyncio.sleep(0.01)

        await until(lambda: any(t["type"] == "hello" for t in _texts(protocol.asgi)))
        ids = [await asyncio.to_thread(_append, org.id, n) for n in range(3)]
        wire = b""
        if recognised:
            async with asyncio.timeout(15):
                while len(_unframe(wire)) < len(ids):
                    wire += await asyncio.to_thread(theirs.recv, 65536)
        else:
            await until(lambda: len([t for t in _texts(protocol.asgi) if "id" in t]) == 3)
        await inbox.put({"type": "websocket.disconnect", "code": 1000})
        async with asyncio.timeout(15):
            await app
        return ids, wire

    try:
        ids, wire = asyncio.run(scenario())
    finally:
        ours.close()
        theirs.close()
    sent_through_asgi = [t.get("id") for t in _texts(protocol.asgi) if "id" in t]
    if recognised:
        # the events went straight to the socket, none through the ASGI send
        assert sent_through_asgi == []
        assert protocol.transport.producer is not None  # registered for backpressure
        assert [f["id"] for f in _unframe(wire)] == ids
    else:
        assert sent_through_asgi == ids
        assert wire == b""


# --- prometheus_client's ValueClass (core/metrics.py) ------------------------------------


def test_a_forked_child_counts_in_its_parents_metrics_file() -> None:
    """core/metrics.py replaces `prometheus_client.values.ValueClass` so an RQ work horse
    writes `<parent pid>h` instead of a file per job; if the name stopped being what
    metrics are built from, the child would write `<its own pid>`."""
    from prometheus_client import Counter

    # where a value's file is opened (the test's own directory: tests/conftest.py)
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    counter = Counter("test_forked_child_total", "A child's count", registry=None)
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        try:
            counter.inc()
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    files = set(os.listdir(path))
    assert f"counter_{os.getpid()}h.db" in files
    assert f"counter_{child}.db" not in files
