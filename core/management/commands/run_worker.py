"""Run an RQ worker with its scheduler (Procfile `worker` and `urgent`), through any Redis
outage.

See core/workers.py: the worker retries a Redis outage instead of exiting, clears the
scheduler lock a dead worker left behind before it starts, and its scheduler starts
enqueue_at jobs within RQ_SCHEDULER_POLL_INTERVAL of their time.

`--queues` says which queues it serves, in order: `all` (the default, `core.jobs.ALL_QUEUES`),
`urgent` (`core.jobs.URGENT_QUEUES`: chat, escalation, mailing_high; the Procfile's
`urgent` process, so a notification due now never waits behind a campaign's batch) or a
comma-separated list of queue names.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.jobs import ALL_QUEUES, QUEUE_SETS
from core.redis import get_redis
from core.safe_defaults import require_secret_key
from core.workers import worker_run_forever


def queue_names(value: str) -> tuple[str, ...]:
    """The queues of `--queues`: a set's name, or known queue names separated by commas."""
    if value in QUEUE_SETS:
        return QUEUE_SETS[value]
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    unknown = [n for n in names if n not in ALL_QUEUES]
    if not names or unknown:
        raise CommandError(
            f"--queues: {', '.join(unknown) or 'empty'}: not a queue; give "
            f"{' or '.join(QUEUE_SETS)}, or names among {', '.join(ALL_QUEUES)}"
        )
    return names


class Command(BaseCommand):
    help = "Run an RQ worker (every queue, or --queues), with the scheduler for enqueue_at."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--burst", action="store_true", help="Exit when the queues are empty.")
        parser.add_argument("--name", default=None)
        parser.add_argument(
            "--queues",
            default="all",
            help="all (default), urgent (chat, escalation, mailing_high), or names a,b,c.",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        names = queue_names(opts["queues"])  # a typo fails here, before anything starts
        require_secret_key()  # no production process on a published key
        worker_run_forever(
            queue_names=names, name=opts["name"], burst=opts["burst"], connection=get_redis()
        )
