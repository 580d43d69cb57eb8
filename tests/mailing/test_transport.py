"""The dispatch's HTTP client (`mailing.transport.SenderPool`) against a real loopback
server: Content-Length, chunked and read-to-close answers, `Connection: close`, a
kept-alive connection the server dropped, and connection reuse where it is allowed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from mailing.transport import SenderPool

OK = json.dumps({"code": 0, "message": "OK"}).encode()

Answer = Callable[[int, dict[str, Any]], bytes]


class Server:
    """HTTP/1.1 on 127.0.0.1: `answer(n, request)` gives the raw bytes of the n-th answer
    (an answer ending in `Connection: close` is followed by closing the connection)."""

    def __init__(self, answer: Answer, *, drop_first_idle: bool = False) -> None:
        self.answer = answer
        self.drop_first_idle = drop_first_idle
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.handlers: list[asyncio.Task[Any]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        number = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return  # the client closed its idle connection
                if number == 1 and self.drop_first_idle and self.requests:
                    return  # a server dropping a kept-alive connection: no byte of answer
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    k.strip().lower(): v.strip()
                    for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)
                }
                body = json.loads(await reader.readexactly(int(headers["content-length"])))
                request = {"path": lines[0].split(" ")[1], "headers": headers, "body": body}
                self.requests.append(request)
                raw = self.answer(len(self.requests), request)
                writer.write(raw)
                await writer.drain()
                framed = b"content-length" in raw.lower() or b"transfer-encoding" in raw.lower()
                if b"connection: close" in raw.lower() or not framed:
                    return
        finally:
            writer.close()

    async def run(self, scenario: Callable[[SenderPool], Awaitable[Any]]) -> Any:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = SenderPool(url=f"http://127.0.0.1:{port}", token="t0k", concurrency=1, timeout=5)
        try:
            async with asyncio.timeout(20):  # a hang fails the test instead of blocking it
                try:
                    return await scenario(pool)
                finally:
                    await pool.aclose()
                    # Each handler ends when the client closes its connection.
                    await asyncio.gather(*self.handlers)
        finally:
            server.close()
            await server.wait_closed()


def _length(body: bytes = OK, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def _chunked(body: bytes = OK, extra: str = "") -> bytes:
    parts = [body[:5], body[5:11], body[11:]]
    chunks = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts if p)
    head = f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{extra}\r\n".encode()
    return head + chunks + b"0\r\n\r\n"


async def _send_three(pool: SenderPool) -> list[Any]:
    return [await pool.send(msg_id=i, phone=79_000_000_000 + i, text=f"hi {i}") for i in (1, 2, 3)]


def test_keep_alive_answers_reuse_one_connection() -> None:
    server = Server(lambda n, r: _length())
    results = asyncio.run(server.run(_send_three))
    assert [r.outcome for r in results] == ["ok", "ok", "ok"]
    assert server.connections == 1
    first = server.requests[0]
    assert first["path"] == "/v1/send/1"
    assert first["headers"]["authorization"] == "Bearer t0k"
    assert first["body"] == {"id": 1, "phone": 79_000_000_001, "text": "hi 1"}


def test_chunked_answers_are_parsed_and_the_connection_kept() -> None:
    server = Server(lambda n, r: _chunked())
    results = asyncio.run(server.run(_send_three))
    assert [r.outcome for r in results] == ["ok", "ok", "ok"]
    assert server.connections == 1


def test_a_chunked_error_body_is_read_whole() -> None:
    body = json.dumps({"code": 7, "message": "quota"}).encode()
    server = Server(lambda n, r: _chunked(body))
    result = asyncio.run(server.run(lambda pool: pool.send(msg_id=1, phone=1, text="x")))
    assert result.outcome == "transient"  # a 200 with another body is not a success
    assert "quota" in result.error


def test_connection_close_opens_a_new_connection_without_hanging() -> None:
    server = Server(lambda n, r: _length(extra="Connection: close\r\n"))
    results = asyncio.run(server.run(_send_three))
    assert [r.outcome for r in results] == ["ok", "ok", "ok"]
    assert server.connections == 3


def test_chunked_with_connection_close() -> None:
    server = Server(lambda n, r: _chunked(extra="Connection: close\r\n"))
    results = asyncio.run(server.run(_send_three))
    assert [r.outcome for r in results] == ["ok", "ok", "ok"]
    assert server.connections == 3


def test_an_answer_without_length_is_read_to_the_close() -> None:
    server = Server(lambda n, r: b"HTTP/1.1 200 OK\r\n\r\n" + OK)
    results = asyncio.run(server.run(_send_three))
    assert [r.outcome for r in results] == ["ok", "ok", "ok"]
    assert server.connections == 3


def test_status_codes_are_classified() -> None:
    codes = {1: 503, 2: 400, 3: 200}

    def answer(n: int, request: dict[str, Any]) -> bytes:
        code = codes[n]
        body = OK if code == 200 else b"no"
        return f"HTTP/1.1 {code} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body

    server = Server(answer)
    results = asyncio.run(server.run(_send_three))
    assert [(r.outcome, r.status_code) for r in results] == [
        ("transient", 503),
        ("permanent", 400),
        ("ok", 200),
    ]
    assert server.connections == 1


def test_a_dropped_idle_connection_is_retried_once_on_a_fresh_one() -> None:
    server = Server(lambda n, r: _length(), drop_first_idle=True)
    results = asyncio.run(server.run(_send_three))
    assert [r.outcome for r in results] == ["ok", "ok", "ok"]
    assert server.connections == 2  # the dropped one, then one kept for both others
    assert [r["body"]["id"] for r in server.requests] == [1, 2, 3]


def test_no_answer_in_time_is_a_lost_answer() -> None:
    async def scenario(pool: SenderPool) -> Any:
        pool.timeout = 0.3
        return await pool.send(msg_id=1, phone=1, text="x")

    server = Server(lambda n, r: b"")

    async def silent(reader: Any, writer: Any) -> None:
        server.handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        while await reader.read(1000):  # never answers; ends when the client gives up
            pass
        writer.close()

    server.handle = silent  # type: ignore[method-assign]
    result = asyncio.run(server.run(scenario))
    assert result.outcome == "transient"
    assert result.answer_lost
