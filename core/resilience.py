"""Riding out an outage of Redis or the database in the long-running processes.

Every process of the Procfile (web, worker, cron, the embedded Redis runner) keeps
running through an outage of any length. The protocol, the same in each:

1. An operation that needs Redis (or the database) fails with one of
   `REDIS_ERRORS` / `DATABASE_ERRORS`: the process tells its `Outage` (logs
   `dependency_down` once, however many retries follow) and sleeps the next delay of
   its `Backoff` (doubling from `OUTAGE_RETRY_MIN` up to `OUTAGE_RETRY_MAX` seconds).
2. It retries the same operation; nothing is skipped, so what was due is done late,
   not lost (the database stays the source of truth and the sweepers in `core/cron.py`
   re-drive whatever a lost Redis write left behind).
3. The first success tells the `Outage` (logs `dependency_up` once, with how long it
   lasted) and resets the backoff.

A process exits only when asked to (SIGTERM/SIGINT); then a dependency that is
already gone is not an error worth a traceback, only a line (`shutdown_dependency_gone`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError

from core.logging import get_logger

log = get_logger(__name__)

# BusyLoadingError (a restarted Valkey replaying its append-only file) is a
# ConnectionError: it passes like the rest of the outage.
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)
DATABASE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)


class Outage:
    """The up/down state of one dependency as one process sees it; logs only changes."""

    def __init__(self, dependency: str, *, process: str) -> None:
        self.dependency = dependency
        self.process = process
        self.down_since: float | None = None

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    def down(self, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning(
                "dependency_down",
                dependency=self.dependency,
                process=self.process,
                error=f"{type(exc).__name__}: {exc}",
            )

    def up(self) -> None:
        if self.down_since is not None:
            log.warning(
                "dependency_up",
                dependency=self.dependency,
                process=self.process,
                down_seconds=round(time.monotonic() - self.down_since, 1),
            )
            self.down_since = None


class Backoff:
    """Delays for retrying a dependency: doubling, capped, reset after a success."""

    def __init__(self, *, first: float | None = None, cap: float | None = None) -> None:
        self.first = settings.OUTAGE_RETRY_MIN if first is None else first
        self.cap = settings.OUTAGE_RETRY_MAX if cap is None else cap
        self._next = self.first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first


def wait_for(
    check: Callable[[], object],
    *,
    outage: Outage,
    errors: tuple[type[BaseException], ...] = REDIS_ERRORS,
    timeout: float | None = None,
) -> bool:
    """Call `check` until it does not raise one of `errors`; True once it succeeded.

    Waits forever unless `timeout` is given (then False when it passed). Logs through
    `outage`, so an outage of an hour is two lines, not eighteen thousand.
    """
    backoff = Backoff()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            check()
        except errors as exc:
            outage.down(exc)
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(backoff.next())
        else:
            outage.up()
            return True
