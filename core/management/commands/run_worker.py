"""Run an RQ worker with its scheduler (Procfile `worker`), through any Redis outage.

See core/workers.py: the worker retries a Redis outage instead of exiting, clears the
scheduler lock a dead worker left behind before it starts, and its scheduler starts
enqueue_at jobs within RQ_SCHEDULER_POLL_INTERVAL of their time.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.jobs import ALL_QUEUES
from core.redis import get_redis
from core.safe_defaults import require_secret_key
from core.workers import worker_run_forever


class Command(BaseCommand):
    help = "Run an RQ worker on every queue, with the scheduler for enqueue_at/enqueue_in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--burst", action="store_true", help="Exit when the queues are empty.")
        parser.add_argument("--name", default=None)

    def handle(self, *args: Any, **opts: Any) -> None:
        require_secret_key()  # no production process on a published key
        worker_run_forever(
            queue_names=ALL_QUEUES, name=opts["name"], burst=opts["burst"], connection=get_redis()
        )
