#!/usr/bin/env python
"""Simulator of the external sender API (seed 004, the "probe" service).

    POST /v1/send/{msgId}   Authorization: Bearer <JWT, HS256, SENDER_JWT_SECRET>
    {"id": msgId, "phone": 7XXXXXXXXXX, "text": "..."}  ->  200 {"code": 0, "message": "OK"}

A body id that differs from the path is 400; a bad token is 401. Switches, set on
the command line or at run time with `POST /control` (JSON, any subset):

    latency_ms   added to every answer (plus up to `jitter_ms` at random)
    error_rate   share of requests answered 500 (0..1)
    garbage_rate share of requests answered 200 with a body that is not JSON
    down         true: every connection is closed without an answer
    keep_texts   true: remember each accepted message's text, for `GET /messages/{id}`
                 (off by default: a benchmark's million texts would fill the memory)

`GET /stats` reports what was accepted: total, unique ids, and ids accepted more
than once (duplicates: the same msgId replayed, harmless since the msgId is the
idempotency key). Per phone it also counts `phones` (phones that got at least one
message) and `phones_several_ids` (phones that got two *different* msgIds: for one
mailing, a real duplicate). `GET /messages/{id}` gives one id's accept count,
`GET /phones/{phone}` the msgIds accepted for that phone.
`POST /reset` forgets everything. A plain asyncio server, so one core pushes
several thousand requests per second and benchmarks measure the platform.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

try:
    import jwt
except ImportError:  # pragma: no cover - PyJWT is in requirements.txt
    jwt = None


class State:
    def __init__(
        self,
        *,
        secret: str,
        latency_ms: float,
        jitter_ms: float,
        error_rate: float,
        garbage_rate: float,
        down: bool,
    ) -> None:
        self.secret = secret
        self.switches: dict[str, Any] = {
            "latency_ms": latency_ms,
            "jitter_ms": jitter_ms,
            "error_rate": error_rate,
            "garbage_rate": garbage_rate,
            "down": down,
            "keep_texts": False,
        }
        self.accepted: Counter[int] = Counter()
        self.texts: dict[int, str] = {}
        self.phones: dict[int, set[int]] = {}
        self.requests = 0
        self.errors = 0
        self.garbage = 0
        self.refused = 0
        self.valid_tokens: set[str] = set()

    def reset(self) -> None:
        self.accepted.clear()
        self.phones.clear()
        self.texts.clear()
        self.requests = self.errors = self.garbage = self.refused = 0

    def stats(self) -> dict[str, Any]:
        dups = {k: v for k, v in self.accepted.items() if v > 1}
        return {
            "requests": self.requests,
            "accepted_total": sum(self.accepted.values()),
            "unique": len(self.accepted),
            "duplicates": len(dups),
            "duplicate_ids": sorted(dups)[:100],
            "phones": len(self.phones),
            "phones_several_ids": sum(1 for ids in self.phones.values() if len(ids) > 1),
            "errors": self.errors,
            "garbage": self.garbage,
            "refused": self.refused,
            "switches": self.switches,
        }

    def token_ok(self, header: str) -> bool:
        if not self.secret:
            return True
        if not header.startswith("Bearer "):
            return False
        token = header[7:]
        if token in self.valid_tokens:
            return True
        try:
            assert jwt is not None
            jwt.decode(token, self.secret, algorithms=["HS256"])
        except Exception:
            return False
        self.valid_tokens.add(token)
        return True


def _response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    reason = {
        200: "OK",
        400: "Bad Request",
        401: "Unauthorized",
        404: "Not Found",
        500: "Internal Server Error",
    }
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Status')}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def _json(status: int, data: Any) -> bytes:
    return _response(status, json.dumps(data).encode())


OK = _json(200, {"code": 0, "message": "OK"})


async def handle_send(
    state: State, path: str, headers: dict[str, str], body: bytes
) -> bytes | None:
    s = state.switches
    state.requests += 1
    delay = s["latency_ms"] + (random.uniform(0, s["jitter_ms"]) if s["jitter_ms"] else 0)
    if delay:
        await asyncio.sleep(delay / 1000)
    if s["down"]:
        state.refused += 1
        return None
    if not state.token_ok(headers.get("authorization", "")):
        return _json(401, {"detail": "invalid token"})
    try:
        msg_id = int(path.rsplit("/", 1)[1])
        data = json.loads(body)
        assert isinstance(data, dict)
        if data.get("id") != msg_id:
            return _json(400, {"detail": "body id differs from path msgId"})
        if not isinstance(data.get("phone"), int) or not isinstance(data.get("text"), str):
            return _json(400, {"detail": "phone (int) and text (str) are required"})
    except (ValueError, AssertionError, IndexError):
        return _json(400, {"detail": "malformed request"})
    roll = random.random()
    if roll < s["error_rate"]:
        state.errors += 1
        return _json(500, {"detail": "internal error"})
    if roll < s["error_rate"] + s["garbage_rate"]:
        state.garbage += 1
        return _response(200, b"<html>gateway hiccup</html>", "text/html")
    state.accepted[msg_id] += 1
    state.phones.setdefault(data["phone"], set()).add(msg_id)
    if s["keep_texts"]:
        state.texts[msg_id] = data["text"]
    return OK


async def handle(state: State, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = [*lines[0].split(" ", 2), "", ""][:3]
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
            response: bytes | None
            if method == "POST" and path.startswith("/v1/send/"):
                response = await handle_send(state, path, headers, body)
            elif method == "GET" and path == "/stats":
                response = _json(200, state.stats())
            elif method == "GET" and path.startswith("/messages/"):
                try:
                    response = _json(
                        200,
                        {
                            "id": int(path.rsplit("/", 1)[1]),
                            "accepted": state.accepted[int(path.rsplit("/", 1)[1])],
                            "text": state.texts.get(int(path.rsplit("/", 1)[1])),
                        },
                    )
                except ValueError:
                    response = _json(400, {"detail": "bad id"})
            elif method == "GET" and path.startswith("/phones/"):
                try:
                    phone = int(path.rsplit("/", 1)[1])
                    response = _json(
                        200, {"phone": phone, "ids": sorted(state.phones.get(phone, ()))}
                    )
                except ValueError:
                    response = _json(400, {"detail": "bad phone"})
            elif method == "POST" and path == "/control":
                try:
                    changes = json.loads(body or b"{}")
                    unknown = set(changes) - set(state.switches)
                    if unknown:
                        raise ValueError(f"unknown switches {sorted(unknown)}")
                    state.switches.update(changes)
                    response = _json(200, state.switches)
                except ValueError as exc:
                    response = _json(400, {"detail": str(exc)})
            elif method == "POST" and path == "/reset":
                state.reset()
                response = _json(200, {"reset": True})
            elif method == "GET" and path == "/health":
                response = _json(200, {"ok": True})
            else:
                response = _json(404, {"detail": "not found"})
            if response is None:  # "down": drop the connection without an answer
                return
            writer.write(response)
            await writer.drain()
    finally:
        writer.close()


async def serve(args: argparse.Namespace) -> None:
    state = State(
        secret=args.secret,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        error_rate=args.error_rate,
        garbage_rate=args.garbage_rate,
        down=args.down,
    )
    server = await asyncio.start_server(
        lambda r, w: handle(state, r, w), args.host, args.port, backlog=2048, limit=1 << 20
    )
    print(
        f"sender simulator on http://{args.host}:{args.port} switches={state.switches}", flush=True
    )
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    if os.path.exists(".env"):  # the platform's settings; the environment wins
        with open(".env") as env_file:
            for line in env_file:
                name, sep, value = line.partition("=")
                if sep and name in ("SENDER_JWT_SECRET", "SENDER_URL", "SENDER_PORT"):
                    os.environ.setdefault(name, value.strip())
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--host", default="127.0.0.1")
    # Listen where the platform will call (SENDER_URL) unless SENDER_PORT says otherwise.
    url_port = urlsplit(os.environ.get("SENDER_URL", "http://127.0.0.1:8020")).port or 8020
    p.add_argument("--port", type=int, default=int(os.environ.get("SENDER_PORT", url_port)))
    p.add_argument("--secret", default=os.environ.get("SENDER_JWT_SECRET", ""))
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--garbage-rate", type=float, default=0.0)
    p.add_argument("--down", action="store_true")
    args = p.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
