"""Serve HTTP and websockets with daphne (Procfile `web`), once Redis answers.

It waits a bounded time for Redis (the embedded one starts alongside), then serves
anyway: without Redis the web answers 503 and /health/ says what is down, which is
better than not listening at all and much better than exiting (honcho would stop
every other process). Daphne itself does not need Redis to stay up.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.redis import wait_for_redis


def _proxy_args() -> list[str]:
    """Behind a load balancer every connection comes from it: per-address rate limits
    need the client's address from a header the balancer sets. One it *overwrites*
    (nginx `proxy_set_header X-Real-IP $remote_addr`): daphne takes the first address
    of a list, which in an appended X-Forwarded-For is the client's own claim."""
    header = os.environ.get("WEB_PROXY_HEADER", "")
    return ["--proxy-headers", "--proxy-headers-host", header] if header else []


class Command(BaseCommand):
    help = "Serve the platform with daphne once Redis answers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default=os.environ.get("WEB_BIND", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("WEB_PORT", "8000"))

    def handle(self, *args: Any, **opts: Any) -> None:
        wait_for_redis(process="web", timeout=30)
        os.execvp(
            sys.executable,
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                opts["bind"],
                "-p",
                str(opts["port"]),
                *_proxy_args(),
                "core.asgi:application",
            ],
        )
