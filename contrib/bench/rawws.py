"""A minimal asyncio websocket client for benchmarks: thousands of sockets per process.

The `websockets` library costs tens of microseconds per frame; a benchmark that
measures the server must not be limited by its clients. This client does only
what the hub's server frames need: the upgrade handshake, unmasked server frames
(text, close, ping), masked pong/close replies, and a callback per text frame.
Set `reading = False` to stop reading from the socket (a client that never reads).
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable
from typing import Any

FrameCallback = Callable[["RawWS", bytes, int], None]


class RawWS(asyncio.Protocol):
    def __init__(
        self, host: str, path: str, on_text: FrameCallback, opened: asyncio.Future[Any]
    ) -> None:
        self.host, self.path = host, path
        self.on_text = on_text
        self.opened = opened
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.close_code: int | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.frames = 0
        self.bytes = 0

    # --- asyncio protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before upgrade: {exc}"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            if b" 101 " not in status:
                self.opened.set_exception(ConnectionError(status.decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            self.opened.set_result(self)
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = struct.unpack_from("!H", buf, pos + 2)[0]
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                head = 10
            end = pos + head + length
            if end > n:
                break
            opcode = b0 & 0x0F
            payload = bytes(buf[pos + head : end])
            pos = end
            self.frames += 1
            self.bytes += length
            if opcode == 1:
                self.on_text(self, payload, length)
            elif opcode == 9:  # ping
                self._send(0xA, payload)
            elif opcode == 8:  # close
                self.close_code = struct.unpack("!H", payload[:2])[0] if length >= 2 else None
                self._send(0x8, payload[:2])
                assert self.transport is not None
                self.transport.close()
        del buf[:pos]

    # --- sending ------------------------------------------------------------------------

    def _send(self, opcode: int, payload: bytes) -> None:
        # Client frames must be masked; a zero mask key leaves the payload as it is.
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head + b"\0\0\0\0" + payload)

    def send_text(self, text: str) -> None:
        self._send(0x1, text.encode())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def pause_reading(self) -> None:
        assert self.transport is not None
        self.transport.pause_reading()


async def connect(
    host: str, port: int, path: str, on_text: FrameCallback, *, timeout: float = 30.0
) -> RawWS:
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[Any] = loop.create_future()
    _, proto = await loop.create_connection(
        lambda: RawWS(f"{host}:{port}", path, on_text, opened), host, port
    )
    await asyncio.wait_for(opened, timeout)
    return proto
