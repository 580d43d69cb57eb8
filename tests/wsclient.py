"""A small synchronous websocket client for end-to-end tests (real `websockets`)."""

from __future__ import annotations

import json
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


class WS:
    def __init__(self, url: str, **kwargs: Any) -> None:
        self.conn: ClientConnection = connect(url, open_timeout=10, **kwargs)
        self.frames: list[dict[str, Any]] = []

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        frame = json.loads(self.conn.recv(timeout=timeout))
        self.frames.append(frame)
        return dict(frame)

    def recv_until(self, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
        """Read frames until one satisfies `predicate`; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching frame within {timeout}s; got {self.frames[-5:]}")
            try:
                frame = self.recv(timeout=remaining)
            except TimeoutError:
                continue
            if predicate(frame):
                return frame

    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if "id" in f]

    def send(self, frame: dict[str, Any]) -> None:
        self.conn.send(json.dumps(frame))

    def close_code(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close; return its close code. Frames read on the
        way are kept in `frames`, as `recv` keeps them."""
        try:
            while True:
                self.frames.append(json.loads(self.conn.recv(timeout=timeout)))
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None

    def close(self) -> None:
        self.conn.close()


def data(frame: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(frame["data"]))
