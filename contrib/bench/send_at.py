#!/usr/bin/env python
"""Benchmark: how late notifications with `send_at` run (issue 15: "within 1 s of it").

Starts the platform as the Procfile does (`honcho start`: embedded Valkey, web, worker,
the urgent worker (`run_worker --queues urgent`), cron, the sender simulator) on a fresh
SQLite database in a temporary VAR_DIR, posts N notifications (`POST /api/notifications/`
with `send_at`) whose times are spread over a window, and prints, per notification, how
late it

- **started**: `started_at - start_at` (the mailing went running), and
- **was sent**: the first delivery's `sent_at - start_at` (the sender accepted it),

as p50 / p99 / max. With `--campaign N` a priority-5 campaign to N clients is running
while they come due (created, then materialized, before the first notification is
posted: the worker busy with its lanes, the "under load" case). `--sender-latency-ms`
makes the sender simulator answer every call that much later (a slow provider: each
campaign batch then lasts longer, and so does the notification's own call).
With `--baseline-root DIR` it runs the same thing first on another checkout of the
platform (e.g. `git archive <commit> | tar -x -C DIR`, with this venv) and prints both
side by side. `--urgent 0` leaves the urgent worker out (the one-worker layout before it),
to compare both in one checkout; a checkout whose Procfile has no `urgent` ignores it.

    .venv/bin/python contrib/bench/send_at.py                          # 60 over 30 s
    .venv/bin/python contrib/bench/send_at.py --count 100 --window 30 --campaign 20000
    .venv/bin/python contrib/bench/send_at.py --baseline-root /tmp/base --campaign 20000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import benchenv  # contrib/bench/benchenv.py: the script's own directory is on sys.path
import httpx

ROOT = Path(__file__).resolve().parents[2]
HONCHO = Path(sys.executable).parent / "honcho"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


class Run:
    """One platform (honcho on one checkout), one measurement."""

    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        self.root = root
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="send-at-bench-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.lines: list[str] = []
        web, sender, redis = _free_port(), _free_port(), _free_port()
        self.base = f"http://127.0.0.1:{web}"
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
        }
        subprocess.run(
            [sys.executable, "contrib/generate_env.py", "--path", str(self.tmp / ".env")],
            cwd=root,
            check=True,
            capture_output=True,
        )
        for line in (self.tmp / ".env").read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.startswith("#"):
                env[name] = value
        env.update(benchenv.platform_env())
        env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            DATABASE_URL=f"sqlite:///{self.tmp / 'db.sqlite3'}",
            VAR_DIR=str(self.tmp / "var"),
            PROMETHEUS_MULTIPROC_DIR=str(self.tmp / "var" / "prometheus"),
            EMBEDDED_REDIS_PORT=str(redis),
            WEB_PORT=str(web),
            SENDER_URL=f"http://127.0.0.1:{sender}",
            PUBLIC_BASE_URL=self.base,
            LOG_LEVEL="INFO" if args.keep else "WARNING",
            LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        self.env = env

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stdout + done.stderr)
        return done.stdout

    def start(self) -> None:
        import re

        self.manage("migrate", "--no-input", "-v", "0")
        printed = self.manage("demo_data")
        found = re.search(r"agent API key:\s+(\S+)", printed)
        assert found, printed
        self.key = found[1]
        self.process = subprocess.Popen(
            [str(HONCHO), "start", "-c", f"worker={self.args.workers},urgent={self.args.urgent}"],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "".join(self.lines[-40:])
            try:
                if httpx.get(f"{self.base}/health/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise RuntimeError("the platform did not come up:\n" + "".join(self.lines[-40:]))
        self.http = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )
        if self.args.sender_latency_ms:  # the simulator may still be starting
            until = time.monotonic() + 30
            while True:
                try:
                    httpx.post(
                        f"{self.env['SENDER_URL']}/control",
                        json={"latency_ms": self.args.sender_latency_ms},
                        timeout=5,
                    ).raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > until:
                        raise
                    time.sleep(0.3)

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        # --keep: every process's log in the kept directory (honcho.log)
        out = open(self.tmp / "honcho.log", "ab") if self.args.keep else None  # noqa: SIM115
        for raw in iter(self.process.stdout.readline, b""):
            self.lines.append(raw.decode(errors="replace"))
            if out is not None:
                out.write(raw)
                out.flush()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print(f"kept {self.tmp}", flush=True)

    def clients(self, count: int, tag: str) -> list[int]:
        """Clients of the demo organization, made in this process's ORM (same database)."""
        from chat.models import Client
        from core.models import Organization

        org = Organization.objects.get(slug="demo")
        made = Client.objects.bulk_create(
            [
                Client(
                    organization=org,
                    name=f"{tag} {n}",
                    phone=str(78_000_000_000 + n + (1_000_000 if tag == "campaign" else 0)),
                    operator_code="800",
                    tag=tag,
                    timezone="UTC",
                )
                for n in range(count)
            ],
            batch_size=5000,
        )
        return [c.pk for c in made]

    def measure(self) -> dict[str, Any]:
        args = self.args
        targets = self.clients(args.count, "sendat")
        if args.campaign:
            self.clients(args.campaign, "campaign")
            now = datetime.now(UTC)
            answer = self.http.post(
                "/api/mailings/",
                json={
                    "organization": "demo",
                    "name": "background campaign",
                    "start_at": now.isoformat(),
                    "end_at": (now + timedelta(hours=1)).isoformat(),
                    "text": "Campaign for {{ name }}",
                    "tags": ["campaign"],
                    "priority": 5,
                },
            )
            assert answer.status_code == 201, answer.text
            self.campaign_id = answer.json()["id"]
            # Its messages exist and its lanes run before the first send_at comes: the
            # worker is busy sending, not creating rows.
            from mailing.models import Mailing

            deadline = time.monotonic() + 600
            while not Mailing.objects.filter(
                pk=self.campaign_id, materialized_at__isnull=False
            ).exists():
                assert time.monotonic() < deadline, "the campaign was not materialized"
                time.sleep(0.5)
        # a spread of fractional times over the window, starting `lead` seconds ahead
        first = datetime.now(UTC) + timedelta(seconds=args.lead)
        ids = []
        for n, client_id in enumerate(targets):
            send_at = first + timedelta(seconds=args.window * n / max(args.count, 1) + 0.137)
            answer = self.http.post(
                "/api/notifications/",
                json={
                    "organization": "demo",
                    "text": "Your code is {{ name }}",
                    "client_ids": [client_id],
                    "send_at": send_at.isoformat(),
                },
            )
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
        return self._collect(ids, deadline=first + timedelta(seconds=args.window + 120))

    def _collect(self, ids: list[int], deadline: datetime) -> dict[str, Any]:
        from django.db.models import Min

        from mailing.models import Mailing

        rows: list[dict[str, Any]] = []
        while datetime.now(UTC) < deadline:
            rows = list(
                Mailing.objects.filter(pk__in=ids)
                .annotate(first_sent=Min("messages__delivery__sent_at"))
                .values("pk", "start_at", "started_at", "first_sent")
            )
            if all(r["first_sent"] is not None for r in rows) and len(rows) == len(ids):
                break
            time.sleep(0.5)
        started = [
            (r["started_at"] - r["start_at"]).total_seconds() for r in rows if r["started_at"]
        ]
        sent = [(r["first_sent"] - r["start_at"]).total_seconds() for r in rows if r["first_sent"]]
        campaign_sent = None
        if self.args.campaign:
            from core.models import Delivery

            campaign_sent = Delivery.objects.filter(
                mailing_message__mailing_id=self.campaign_id, status="sent"
            ).count()
        return {
            "notifications": len(ids),
            "started": len(started),
            "sent": len(sent),
            "early_starts": sum(1 for v in started if v < 0),
            "start_late_p50": _percentile(started, 0.5),
            "start_late_p99": _percentile(started, 0.99),
            "start_late_max": round(max(started), 3) if started else None,
            "send_late_p50": _percentile(sent, 0.5),
            "send_late_p99": _percentile(sent, 0.99),
            "send_late_max": round(max(sent), 3) if sent else None,
            "campaign_sent_meanwhile": campaign_sent,
        }


def run_one(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    run = Run(root, args)
    try:
        run.start()
        os.environ.update(
            DJANGO_SETTINGS_MODULE="core.settings",
            DATABASE_URL=run.env["DATABASE_URL"],
            REDIS_URL=f"redis://127.0.0.1:{run.env['EMBEDDED_REDIS_PORT']}/0",
            SECRET_KEY=run.env["SECRET_KEY"],
        )
        import django

        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        django.setup()
        return run.measure()
    finally:
        run.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--count", type=int, default=60, help="notifications")
    p.add_argument("--window", type=float, default=30.0, help="seconds their send_at spans")
    p.add_argument("--lead", type=float, default=5.0, help="seconds before the first send_at")
    p.add_argument(
        "--campaign", type=int, default=0, help="clients of a campaign running meanwhile"
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes (Procfile: 1)")
    p.add_argument(
        "--urgent", type=int, default=1, help="urgent worker processes (Procfile: 1; 0: none)"
    )
    p.add_argument(
        "--sender-latency-ms", type=float, default=0, help="the simulator's added latency"
    )
    p.add_argument("--baseline-root", default="", help="another checkout to run first")
    p.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not HONCHO.exists():
        sys.exit("honcho is not installed next to this Python")
    print(
        f"{args.count} notifications over {args.window} s, campaign {args.campaign} clients, "
        f"{args.workers} worker(s), {args.urgent} urgent, sender latency "
        f"{args.sender_latency_ms} ms; load: {os.getloadavg()}",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    if args.baseline_root:
        # a separate process: one Django setup per interpreter
        out = subprocess.run(
            [sys.executable, __file__, *_forward(args)],
            env={**os.environ, "SEND_AT_BENCH_ROOT": args.baseline_root},
            capture_output=True,
            text=True,
            timeout=1800,
        )
        start = out.stdout.rfind("\n{")
        if start < 0:
            print(out.stdout[-3000:], out.stderr[-3000:], file=sys.stderr)
        else:
            results["baseline"] = json.loads(out.stdout[start + 1 :])
    root = Path(os.environ.get("SEND_AT_BENCH_ROOT") or ROOT)
    results["this"] = run_one(root, args)
    if "SEND_AT_BENCH_ROOT" in os.environ:
        print("\n" + json.dumps(results["this"]), flush=True)
        return
    keys = list(results["this"])
    names = list(results)
    print(f"\n{'':26}" + "".join(f"{n:>12}" for n in names))
    for key in keys:
        cells = "".join(f"{results[n].get(key)!s:>12}" for n in names)
        print(f"{key:26}{cells}")
    print(f"load after: {os.getloadavg()}", flush=True)


def _forward(args: argparse.Namespace) -> list[str]:
    out = [
        f"--count={args.count}",
        f"--window={args.window}",
        f"--lead={args.lead}",
        f"--campaign={args.campaign}",
        f"--workers={args.workers}",
        f"--urgent={args.urgent}",
        f"--sender-latency-ms={args.sender_latency_ms}",
    ]
    return [*out, "--keep"] if args.keep else out


if __name__ == "__main__":
    main()
