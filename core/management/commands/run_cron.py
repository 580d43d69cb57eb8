"""Run RQ's cron scheduler with `core.cron` (Procfile `cron`), through any Redis outage.

RQ's own loop exits on the first connection error (and honcho then stops every other
process); `ResilientCronScheduler` (core/workers.py) retries instead.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from rq.exceptions import StopRequested

from core.redis import get_redis, wait_for_redis
from core.safe_defaults import require_secret_key
from core.workers import ResilientCronScheduler, stop_on_signals


class Command(BaseCommand):
    help = "Enqueue the periodic jobs listed in core/cron.py."

    def handle(self, *args: Any, **opts: Any) -> None:
        require_secret_key()  # no production process on a published key
        stop_on_signals()
        try:
            wait_for_redis(process="cron")
            scheduler = ResilientCronScheduler(connection=get_redis())
            scheduler.load_config_from_file("core.cron")
        except StopRequested:
            return
        scheduler.start()
