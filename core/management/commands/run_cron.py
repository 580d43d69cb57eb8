"""Wait for Redis, then run RQ's cron scheduler with `core.cron` (Procfile `cron`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from rq.cron import CronScheduler

from core.redis import get_redis, wait_for_redis
from core.safe_defaults import require_secret_key


class Command(BaseCommand):
    help = "Enqueue the periodic jobs listed in core/cron.py."

    def handle(self, *args: Any, **opts: Any) -> None:
        require_secret_key()  # no production process on a published key
        wait_for_redis(timeout=60)
        scheduler = CronScheduler(connection=get_redis())
        scheduler.load_config_from_file("core.cron")
        scheduler.start()
