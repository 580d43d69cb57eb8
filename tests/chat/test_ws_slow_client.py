"""A websocket client that stops reading is dropped (4408) before it can grow server memory.

daphne/Twisted would buffer writes for it without limit; the hub registers as the
transport's push producer, so once the connection's send buffer is full its
frames wait in a bounded queue, and past WS_SEND_QUEUE it is dropped and counted.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading
from typing import Any

import httpx
import pytest

from core.events import event_append, serialize
from tests.conftest import METRICS_AUTH, wait_until
from tests.wsclient import WS


def _metric(web: Any, name: str, labels: str = "") -> float:
    text = httpx.get(f"{web.url}/metrics", headers=METRICS_AUTH, timeout=5).text
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


class StalledClient:
    """A raw websocket client that reads its hello, then stops reading."""

    def __init__(self, web: Any, path: str) -> None:
        host, port = web.url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        # A small receive window, so the server's buffers fill up soon.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        received = b""
        while b'"hello"' not in received:
            chunk = self.sock.recv(4096)
            assert chunk, f"closed during the handshake: {received!r}"
            received += chunk
        assert received.startswith(b"HTTP/1.1 101"), received[:100]
        self.received = received

    def read_to_end(self) -> tuple[int, int | None]:
        """Start reading again: (bytes read, close code if a close frame was seen)."""
        data = self.received
        try:
            while chunk := self.sock.recv(1 << 16):
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return len(data) - len(self.received), _close_code(data)


def _close_code(data: bytes) -> int | None:
    """Walk the server frames after the HTTP answer; the close frame's code, if any."""
    pos = data.find(b"\r\n\r\n") + 4
    while pos + 2 <= len(data):
        opcode, length = data[pos] & 0x0F, data[pos + 1] & 0x7F
        head = 2
        if length == 126:
            length, head = struct.unpack_from("!H", data, pos + 2)[0], 4
        elif length == 127:
            length, head = struct.unpack_from("!Q", data, pos + 2)[0], 10
        if opcode == 8 and pos + head + 2 <= len(data):
            return int(struct.unpack_from("!H", data, pos + head)[0])
        pos += head + length
    return None


@pytest.mark.django_db(transaction=True)
def test_client_that_stops_reading_is_dropped_while_others_keep_receiving(
    start_web, agent, make_agent
):
    # given a web process that lets a socket fall 50 frames behind its send buffer
    web = start_web(WS_SEND_QUEUE="50")
    org = agent.organization
    stalled_agent = make_agent("slowpoke", org)
    reader = WS(f"{web.ws_url}/ws/chat/{org.slug}/?token={agent.key}")
    hello = reader.recv()
    assert hello["type"] == "hello"
    stalled = StalledClient(web, f"/ws/chat/{org.slug}/?token={stalled_agent.key}")
    assert _metric(web, "ws_subscribers") == 2

    # while the reading agent consumes everything in the background
    received: list[int] = []
    done = threading.Event()

    def consume() -> None:
        while not done.is_set():
            try:
                frame = reader.recv(timeout=0.5)
            except TimeoutError:
                continue
            if "id" in frame:
                received.append(frame["id"])

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()

    # when events keep coming (16 KiB each) and the stalled client reads none of them
    payload = serialize({"text": "x" * 16_384})
    published: list[int] = []

    def publish_until_dropped() -> bool:
        for _ in range(25):
            published.append(
                event_append(organization_id=org.pk, event_type="new_message", data=payload)
            )
        return _metric(web, "ws_subscribers_dropped_total", 'reason="slow"') >= 1

    try:
        # then the server stops buffering for it and drops it, counted in /metrics ...
        wait_until(publish_until_dropped, timeout=60, interval=0)
        assert len(published) < 2_000  # it did not buffer hundreds of frames first
        assert _metric(web, "ws_subscribers_dropped_total", 'reason="slow"') == 1  # once
        assert _metric(web, "ws_send_paused_total") >= 1
        wait_until(lambda: _metric(web, "ws_subscribers") == 1)
        # ... while the reading agent received every event, in order
        wait_until(lambda: received[-1:] == published[-1:], timeout=30)
    finally:
        done.set()
        thread.join(5)
    assert received == published

    # and the stalled client, reading again, finds its connection closed (4408 when the
    # close frame got through before the close handshake timed out and the socket was cut)
    read, code = stalled.read_to_end()
    assert code in (4408, None)
    assert read < len(published) * len(payload)  # it never got the whole backlog


@pytest.mark.django_db(transaction=True)
def test_dropped_client_resumes_without_gap(start_web, agent):
    # given an agent that saw events up to some id
    web = start_web(WS_SEND_QUEUE="50")
    org = agent.organization
    event_append(organization_id=org.pk, event_type="new_message", data=serialize({"n": -1}))
    first = WS(f"{web.ws_url}/ws/chat/{org.slug}/?token={agent.key}")
    last_seen = first.recv()["last_event_id"]
    first.close()

    # when events were published while it was away (as after a 4408 drop)
    ids = [
        event_append(organization_id=org.pk, event_type="new_message", data=serialize({"n": i}))
        for i in range(120)
    ]

    # then resuming with last_event_id replays all of them, in order, then says hello
    again = WS(f"{web.ws_url}/ws/chat/{org.slug}/?token={agent.key}&last_event_id={last_seen}")
    hello = again.recv_until(lambda f: f["type"] == "hello")
    assert [f["id"] for f in again.events()] == ids, (last_seen, again.frames[:3])
    assert hello["last_event_id"] == ids[-1]


@pytest.mark.django_db(transaction=True)
def test_sockets_vanishing_during_fan_out_do_not_disturb_the_others(start_web, agent):
    # given one reading agent and 30 sockets of the same organization
    web = start_web()
    org = agent.organization
    reader = WS(f"{web.ws_url}/ws/chat/{org.slug}/?token={agent.key}")
    reader.recv()
    others = [StalledClient(web, f"/ws/chat/{org.slug}/?token={agent.key}") for _ in range(30)]
    published: list[int] = []
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            published.append(
                event_append(organization_id=org.pk, event_type="new_message", data="{}")
            )

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        # when they all reset their connections while events are being fanned out
        for client in others:
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.sock.close()
        wait_until(lambda: _metric(web, "ws_subscribers") == 1)
    finally:
        stop.set()
        thread.join(5)

    # then the hub kept going: the reader got every event, in order, and was not closed
    last = event_append(organization_id=org.pk, event_type="new_message", data="{}")
    published.append(last)
    reader.recv_until(lambda f: f.get("id") == last, timeout=30)
    assert [f["id"] for f in reader.events()] == published
    assert _metric(web, "ws_subscribers_dropped_total", 'reason="stream"') == 0
    assert _metric(web, "ws_subscribers_dropped_total", 'reason="error"') == 0
