"""The sender's HTTP client: a lean keep-alive HTTP/1.1 client for the dispatch hot path.

The one HTTP client of mailing dispatch. Measured on the 2-core machine against the
simulator, httpx/httpcore did ~300 requests/s on one connection and *less* with more
connections (~100/s at 100 connections: its pool bookkeeping grows with the number
of waiting requests), while plain asyncio streams did ~2,500/s; against aiohttp see
`contrib/bench/mailing_dispatch.py --client both` and BENCHMARKS.md ("Mailing
dispatch: the HTTP client"). The request and the classification of answers are the
same as `core.sender`'s (`classify` is reused, and the same Prometheus metrics are
observed). Tested against a real server in tests/mailing/test_transport.py.

Only what the sender API needs: POST with a JSON body, Content-Length or chunked
answers, keep-alive, http or https.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.sender import SENDER_LATENCY, SENDER_REQUESTS, SendResult, classify

MAX_BODY = 64 * 1024


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already broken: nothing to release
            self.writer.close()


@dataclass
class _Progress:
    sent: bool = False  # some bytes of the request were handed to the socket


class _Unanswered(Exception):
    """The connection closed before any byte of an answer (a stale keep-alive)."""


class SenderPool:
    """Bounded-concurrency sender client. Create and use inside one event loop."""

    def __init__(self, *, url: str, token: str, concurrency: int, timeout: float) -> None:
        parts = urlsplit(url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.tls else 80)
        self.base = parts.path.rstrip("/") + "/v1/send/"
        self.host_header = parts.netloc
        self.token = token
        self.timeout = timeout
        self.semaphore = asyncio.Semaphore(concurrency)
        self.idle: list[_Conn] = []
        self.ssl_context = ssl.create_default_context() if self.tls else None

    async def aclose(self) -> None:
        while self.idle:
            self.idle.pop().close()

    async def _connect(self) -> _Conn:
        reader, writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.ssl_context, limit=MAX_BODY * 2
        )
        return _Conn(reader, writer)

    def _request(self, msg_id: int, phone: int, text: str) -> bytes:
        body = json.dumps({"id": msg_id, "phone": phone, "text": text}).encode()
        head = (
            f"POST {self.base}{msg_id} HTTP/1.1\r\n"
            f"Host: {self.host_header}\r\n"
            f"Authorization: Bearer {self.token}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: keep-alive\r\n\r\n"
        )
        return head.encode("latin-1") + body

    async def _exchange(
        self, conn: _Conn, request: bytes, progress: _Progress
    ) -> tuple[int, bytes, bool]:
        # From here on the provider may have the request: a failure is a lost answer.
        progress.sent = True
        conn.writer.write(request)
        await conn.writer.drain()
        try:
            head = await conn.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _Unanswered from exc
            raise
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip().lower()
        keep = headers.get("connection") != "close"
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int((await conn.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await conn.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
                if len(body) > MAX_BODY:
                    raise ValueError("answer too large")
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length > MAX_BODY:
                raise ValueError("answer too large")
            body = await conn.reader.readexactly(length)
        else:
            body = await conn.reader.read(MAX_BODY)
            keep = False
        return status, body, keep

    async def send(self, *, msg_id: int, phone: int, text: str) -> SendResult:
        request = self._request(msg_id, phone, text)
        async with self.semaphore:
            start = time.perf_counter()
            progress = _Progress()
            try:
                async with asyncio.timeout(self.timeout):
                    status, body = await self._send_once(request, progress)
                duration = int((time.perf_counter() - start) * 1000)
                result = classify(status, body, duration)
            except TimeoutError:
                what = "ReadTimeout: no answer in time" if progress.sent else "ConnectTimeout"
                result = self._error(what, start, lost=progress.sent)
            except (
                OSError,
                asyncio.IncompleteReadError,
                ValueError,
                IndexError,
                _Unanswered,
            ) as exc:
                result = self._error(f"{type(exc).__name__}: {exc}", start, lost=progress.sent)
        SENDER_REQUESTS.labels(result.outcome).inc()
        SENDER_LATENCY.observe(result.duration_ms / 1000)
        return result

    async def _send_once(self, request: bytes, progress: _Progress) -> tuple[int, bytes]:
        reused = bool(self.idle)
        conn = self.idle.pop() if reused else await self._connect()
        try:
            status, body, keep = await self._exchange(conn, request, progress)
        except (_Unanswered, ConnectionResetError, BrokenPipeError):
            conn.close()
            if not reused:
                raise
            # A kept-alive connection the server had closed: one fresh try. Same msgId,
            # so even if the first request did arrive, the provider sees one message.
            # (Resent whatever SENDER_RETRY_ON_LOST_ANSWER says: a connection closed with
            # no byte of answer is the server dropping an idle connection, which every
            # HTTP client retries; docs/mailing.md.)
            conn = await self._connect()
            try:
                status, body, keep = await self._exchange(conn, request, progress)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        if keep:
            self.idle.append(conn)
        else:
            conn.close()
        return status, body

    @staticmethod
    def _error(message: str, start: float, *, lost: bool) -> SendResult:
        duration = int((time.perf_counter() - start) * 1000)
        return SendResult("transient", None, duration, message[:500], answer_lost=lost)
