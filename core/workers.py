"""RQ's worker, scheduler and cron scheduler, made to ride out outages and restarts.

`manage.py run_worker` and `manage.py run_cron` use these subclasses (rq==3.0.0 is
pinned in requirements.txt for them; tests/core/test_workers.py fails when an
override stops applying). What each adds to RQ, and why:

- `ResilientCronScheduler.start`: RQ's loop has no retry, so ~7 s into a Redis outage
  the cron process exited and honcho stopped every other process with it. Here the
  loop retries with backoff (core/resilience.py) and never exits unless asked to.
- `ResilientWorker`: RQ's dequeue loop already retries a connection error (with a
  backoff up to 60 s, now `OUTAGE_RETRY_MAX`), but one raised anywhere else (while a
  job finishes, in a heartbeat) ends `work()`. `run_worker` then starts a new worker
  once Redis answers (`worker_run_forever`). Its repeated "could not connect" lines
  become one `dependency_down` / `dependency_up` pair, and a shutdown while Redis is
  already gone (the embedded one stops with everything) is one line, not tracebacks.
- `PreciseScheduler` (the worker's scheduler process): RQ scores a scheduled job by
  its time truncated to the second and polls every second, so a job ran up to a
  second early and up to a second late. `core.jobs.enqueue_now(at=...)` stores the
  exact time and this scheduler compares it with the exact clock every
  `RQ_SCHEDULER_POLL_INTERVAL` seconds: a job starts at most that long after its time.
  Its loop also retries a Redis outage instead of dying (RQ's scheduler process exits
  on the first connection error and the worker restarted it only every
  `maintenance_interval`, 600 s by default; now `RQ_MAINTENANCE_INTERVAL`).
- `stale_holders_clear`: a worker stopped with Redis already gone leaves its
  scheduler lock (TTL 61 s) and its registration behind; the next worker could not
  take the lock and, with RQ's 600 s maintenance interval, ran ten minutes without a
  scheduler. At start, locks of schedulers that are provably dead (same host and a
  pid that no longer runs, or no heartbeat for `RQ_SCHEDULER_STALE_AFTER` seconds)
  are released, with a compare-and-delete, so a live holder is never robbed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from redis import Redis
from rq import Worker
from rq.cron import CronScheduler
from rq.exceptions import SchedulerNotFound, StopRequested
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler
from rq.scripts import release_lock

from core.logging import get_logger
from core.resilience import REDIS_ERRORS, Backoff, Outage

log = get_logger(__name__)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


# --- the scheduler (a process forked by the worker) ------------------------------------


class PreciseScheduledJobRegistry(ScheduledJobRegistry):
    def get_jobs_to_schedule(
        self, timestamp: int | None = None, chunk_size: int = 1000
    ) -> list[str]:
        # RQ passes the clock truncated to the second; scores written by
        # core.jobs.enqueue_now carry the fraction, so compare with the exact clock.
        return super().get_jobs_to_schedule(time.time(), chunk_size)  # type: ignore[arg-type]


class PreciseScheduler(RQScheduler):
    def prepare_registries(self, queue_names: Iterable[str] | None = None) -> None:
        self._scheduled_job_registries = [
            PreciseScheduledJobRegistry(
                name, connection=self.connection, serializer=self.serializer
            )
            for name in (queue_names or self._acquired_locks)
        ]

    def work(self) -> None:
        """RQ's loop, polling every RQ_SCHEDULER_POLL_INTERVAL and riding out outages.

        Heartbeats (lock refresh) stay at RQ's `interval` (1 s; the lock TTL is
        interval + 60 and Redis wants whole seconds), only the due-job check is faster.
        """
        self._install_signal_handlers()
        outage = Outage("redis", process="scheduler")
        backoff = Backoff()
        poll = settings.RQ_SCHEDULER_POLL_INTERVAL
        registered = False
        last_heartbeat = 0.0
        worker_pid = os.getppid()
        while not self._stop_requested:
            if os.getppid() != worker_pid:
                # The worker that forked us was killed (SIGKILL, OOM): stop and release
                # the locks, so the worker started in its place takes the scheduler over
                # instead of an orphan holding it for as long as it lives.
                log.warning("scheduler_orphaned", worker_pid=worker_pid)
                break
            try:
                if not registered:
                    self.register_birth()
                    registered = True
                if self.should_reacquire_locks:
                    self.acquire_locks()
                if time.monotonic() - last_heartbeat >= self.interval:
                    self.heartbeat()
                    last_heartbeat = time.monotonic()
                self.enqueue_scheduled_jobs()
            except REDIS_ERRORS as exc:
                outage.down(exc)
                time.sleep(backoff.next())
                continue
            outage.up()
            backoff.reset()
            time.sleep(poll)
        try:
            self.stop()
        except REDIS_ERRORS:
            log.info("shutdown_dependency_gone", dependency="redis", process="scheduler")


# --- the worker -----------------------------------------------------------------------


_WORKER_OUTAGE = Outage("redis", process="worker")


class _ConnectionRetryFilter(logging.Filter):
    """RQ logs "could not connect to Redis instance" at every retry of its dequeue
    loop and pub/sub thread; turn them into one `dependency_down` per outage."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "found an unhandled exception" in str(record.msg) and record.exc_info:
            # The loop quit on a Redis error (a job was finishing when Redis went):
            # worker_run_forever says `worker_restarting`; the traceback says nothing more.
            error = record.exc_info[1]
            if isinstance(error, REDIS_ERRORS):
                _WORKER_OUTAGE.down(error)
                return False
            return True
        if "could not connect to Redis instance" not in str(record.msg):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        error = next((a for a in args if isinstance(a, BaseException)), None)
        _WORKER_OUTAGE.down(error or ConnectionError("Redis unreachable"))
        return False


_retry_filter = _ConnectionRetryFilter()


class ResilientWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("maintenance_interval", settings.RQ_MAINTENANCE_INTERVAL)
        super().__init__(*args, **kwargs)
        # RQ's dequeue loop backs off up to 60 s: Redis back, the worker still asleep.
        self.max_connection_wait_time = settings.OUTAGE_RETRY_MAX
        self.stop_signalled = False
        rq_log = logging.getLogger("rq.worker")
        if _retry_filter not in rq_log.filters:
            rq_log.addFilter(_retry_filter)

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = "%H:%M:%S",
        log_format: str = "%(asctime)s %(message)s",
    ) -> None:
        # Same as RQ 3.0.0's, with PreciseScheduler instead of RQScheduler.
        self.scheduler = PreciseScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            if burst:
                try:
                    self.scheduler.register_birth()
                    self.scheduler.enqueue_scheduled_jobs()
                finally:
                    self.scheduler.release_locks()
                    self.scheduler.register_death()
            else:
                self.scheduler.start()

    def run_maintenance_tasks(self) -> None:
        if self._stop_requested:
            # A warm shutdown during a job stops the scheduler first; RQ's maintenance
            # would then start it again (its process is not alive) for the last moments.
            return
        super().run_maintenance_tasks()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        super().heartbeat(timeout, pipeline)
        if pipeline is None:
            _WORKER_OUTAGE.up()  # a heartbeat went through: Redis answers

    def request_stop(self, signum: Any, frame: Any) -> None:
        self.stop_signalled = True
        try:
            super().request_stop(signum, frame)
        except REDIS_ERRORS:
            # Recording the shutdown request needs Redis; stopping does not.
            raise StopRequested() from None

    def teardown(self) -> None:
        try:
            super().teardown()
        except REDIS_ERRORS:
            log.info("shutdown_dependency_gone", dependency="redis", process="worker")


def _raise_stop(signum: int, frame: Any) -> None:
    raise StopRequested()


def stop_on_signals() -> None:
    """Until RQ installs its own handlers: SIGTERM/SIGINT end the process quietly."""
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)


def worker_run_forever(
    *, queue_names: Iterable[str], name: str | None, burst: bool, connection: Redis
) -> None:
    """Run a worker; when it quits on a Redis error, start a new one once Redis answers.

    Returns when the worker was asked to stop (SIGTERM/SIGINT) or, with `burst`, when
    the queues are empty.
    """
    from core.jobs import ALL_QUEUES, get_queue
    from core.redis import wait_for_redis

    # A dead holder's locks on every queue, not only this worker's: clearing deletes the
    # holder's metadata, after which its lock on a queue this worker does not serve could
    # no longer be proven dead (an `urgent` worker starting first would leave `mailing`
    # locked for the lock's whole TTL, and the `worker` could not take it).
    stale_queues = list(dict.fromkeys([*ALL_QUEUES, *queue_names]))
    backoff = Backoff()
    while True:
        stop_on_signals()
        try:
            wait_for_redis(process="worker", outage=_WORKER_OUTAGE)
            stale_holders_clear(connection=connection, queue_names=stale_queues)
            worker = ResilientWorker(
                [get_queue(q) for q in queue_names], connection=connection, name=name
            )
            worker.work(with_scheduler=True, burst=burst, logging_level="INFO")
        except REDIS_ERRORS as exc:
            _WORKER_OUTAGE.down(exc)
        except StopRequested:
            return
        else:
            if worker.stop_signalled or burst:
                return
        log.warning("worker_restarting", process="worker")
        try:
            time.sleep(backoff.next())
        except StopRequested:
            return


def stale_holders_clear(*, connection: Redis, queue_names: list[str]) -> list[str]:
    """Release scheduler locks and registrations left by dead workers; the queue names
    whose lock was released. Call before the new worker starts."""
    host = socket.gethostname()
    me = os.getpid()
    released = []
    dead: dict[str, RQScheduler | None] = {}  # holder name -> its metadata if dead
    for queue_name in queue_names:
        key = RQScheduler.get_locking_key(queue_name)
        raw = connection.get(key)
        if raw is None:
            continue
        owner = raw.decode() if isinstance(raw, bytes) else str(raw)
        if owner not in dead:
            try:
                holder = RQScheduler.fetch(owner, connection)
            except SchedulerNotFound:
                # No metadata: either just acquired (the process is forking) or gone
                # long enough for the hash to expire, when the lock expires with it.
                holder = None
            alive = holder is None or not _holder_dead(
                holder.hostname, holder.pid, holder.last_heartbeat, host, me
            )
            dead[owner] = None if alive else holder
        holder = dead[owner]
        if holder is not None and release_lock(connection, key, owner):
            released.append(queue_name)
            log.warning(
                "scheduler_lock_released",
                queue=queue_name,
                holder=owner,
                holder_pid=holder.pid,
                reason="holder dead",
            )
    for holder in dead.values():
        if holder is not None:
            connection.delete(holder.key)
    for worker in Worker.all(connection=connection):
        mine = worker.hostname == host and worker.pid and worker.pid != me
        if mine and not _pid_alive(worker.pid or 0):
            with contextlib.suppress(Exception):
                worker.register_death()
                log.info("worker_registration_cleared", worker=worker.name, pid=worker.pid)
    return released


def _holder_dead(
    hostname: str, pid: int, last_heartbeat: datetime | None, host: str, me: int
) -> bool:
    if hostname == host and (pid == me or not _pid_alive(pid)):
        return True  # on this host, and its process is gone (or the pid is now ours)
    if last_heartbeat is None:
        return False
    age = (datetime.now(UTC) - last_heartbeat).total_seconds()
    return age > settings.RQ_SCHEDULER_STALE_AFTER


# --- cron -----------------------------------------------------------------------------


class ResilientCronScheduler(CronScheduler):
    def start(self) -> None:
        """RQ's loop (enqueue what is due, save, heartbeat, sleep) with retries."""
        self.log.info("CronScheduler %s: starting...", self.name)
        self._install_signal_handlers()
        outage = Outage("redis", process="cron")
        backoff = Backoff()
        registered = False
        try:
            while True:
                try:
                    if not registered:
                        self.register_birth()
                        registered = True
                    # A job whose enqueue failed keeps its due time: it goes on the retry.
                    if self.enqueue_jobs():
                        self.save()
                    self.heartbeat()
                except REDIS_ERRORS as exc:
                    outage.down(exc)
                    time.sleep(backoff.next())
                    continue
                if outage.is_down:
                    outage.up()
                    self._sweep_now()
                backoff.reset()
                sleep_time = self.calculate_sleep_interval()
                if sleep_time > 0:
                    time.sleep(sleep_time)
        except (KeyboardInterrupt, StopRequested):
            self.log.info("CronScheduler %s: stop requested", self.name)
        finally:
            try:
                self.register_death()
            except REDIS_ERRORS:
                log.info("shutdown_dependency_gone", dependency="redis", process="cron")

    def _sweep_now(self) -> None:
        """After an outage, every interval job (the sweepers) is due at once: whatever a
        lost enqueue left behind during the outage is found now, not up to an interval
        later."""
        for job in self._cron_jobs:
            if job.interval:
                job.next_enqueue_time = datetime.now(UTC)


__all__ = [
    "PreciseScheduler",
    "ResilientCronScheduler",
    "ResilientWorker",
    "stale_holders_clear",
    "worker_run_forever",
]
