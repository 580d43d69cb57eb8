"""Wait for Redis, then run an RQ worker with its scheduler (Procfile `worker`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from rq import Worker

from core.jobs import ALL_QUEUES, get_queue
from core.redis import get_redis, wait_for_redis
from core.safe_defaults import require_secret_key


class Command(BaseCommand):
    help = "Run an RQ worker on every queue, with the scheduler for enqueue_at/enqueue_in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--burst", action="store_true", help="Exit when the queues are empty.")
        parser.add_argument("--name", default=None)

    def handle(self, *args: Any, **opts: Any) -> None:
        require_secret_key()  # no production process on a published key
        wait_for_redis(timeout=60)
        worker = Worker(
            [get_queue(q) for q in ALL_QUEUES], connection=get_redis(), name=opts["name"]
        )
        worker.work(with_scheduler=True, burst=opts["burst"], logging_level="INFO")
