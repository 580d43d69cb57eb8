"""core/workers.py and core/jobs.py scheduling, in process (fast): the overrides of RQ
still apply (rq==3.0.0 is pinned for them), a scheduled job is never due early, and a
stale scheduler lock is released only when its holder is provably dead."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler

from core.jobs import QUEUE_DEFAULT, enqueue_now, get_queue
from core.workers import (
    PreciseScheduledJobRegistry,
    PreciseScheduler,
    ResilientCronScheduler,
    ResilientWorker,
    stale_holders_clear,
)


def noop() -> None:
    """A job for the scheduler tests."""


@pytest.fixture
def clean_redis(redis_client: Any) -> Any:
    redis_client.flushdb()
    yield redis_client
    redis_client.flushdb()


def test_enqueue_at_keeps_the_fraction_so_a_job_is_never_due_early(clean_redis: Any) -> None:
    # given a time with a fraction of a second
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5, milliseconds=700)
    # when it is scheduled through the one helper
    enqueue_now(noop, queue=QUEUE_DEFAULT, at=at)
    # then its score is the exact time, not the second RQ truncates it to
    registry = ScheduledJobRegistry(queue=get_queue(QUEUE_DEFAULT))
    (job_id,) = registry.get_job_ids()
    assert clean_redis.zscore(registry.key, job_id) == pytest.approx(at.timestamp(), abs=1e-3)
    # and the scheduler's registry does not hand it out in the second before it
    precise = PreciseScheduledJobRegistry(QUEUE_DEFAULT, connection=clean_redis)
    assert precise.get_jobs_to_schedule() == []
    clean_redis.zadd(registry.key, {job_id: time.time() - 0.01})
    assert precise.get_jobs_to_schedule() == [job_id]


def test_the_worker_runs_rq_with_the_precise_scheduler(clean_redis: Any) -> None:
    """Fails when RQ renames or stops calling `Worker._start_scheduler` (the override)."""
    worker = ResilientWorker([get_queue(QUEUE_DEFAULT)], connection=clean_redis)
    assert worker.maintenance_interval == 10  # RQ_MAINTENANCE_INTERVAL, not RQ's 600
    worker.work(burst=True, with_scheduler=True)
    assert isinstance(worker.scheduler, PreciseScheduler)
    assert hasattr(ResilientCronScheduler, "calculate_sleep_interval")


def _plant_lock(redis: Any, *, owner: str, hostname: str, pid: int, beat: datetime) -> None:
    for queue in ("default", "chat"):
        redis.set(RQScheduler.get_locking_key(queue), owner, ex=61)
    stamp = beat.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    redis.hset(
        f"rq:scheduler:{owner}",
        mapping={
            "name": owner,
            "hostname": hostname,
            "pid": str(pid),
            "queues": "default,chat",
            "created_at": stamp,
            "last_heartbeat": stamp,
        },
    )


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def test_a_lock_held_by_a_dead_process_on_this_host_is_released(clean_redis: Any) -> None:
    _plant_lock(
        clean_redis,
        owner="dead",
        hostname=socket.gethostname(),
        pid=_dead_pid(),
        beat=datetime.now(UTC),
    )
    assert sorted(stale_holders_clear(connection=clean_redis, queue_names=["default", "chat"])) == [
        "chat",
        "default",
    ]
    assert clean_redis.get(RQScheduler.get_locking_key("default")) is None
    assert not clean_redis.exists("rq:scheduler:dead")


def test_a_lock_held_by_a_live_scheduler_is_kept(clean_redis: Any) -> None:
    # a live process on this host, heartbeating: not ours to take
    _plant_lock(
        clean_redis,
        owner="live",
        hostname=socket.gethostname(),
        pid=os.getppid(),
        beat=datetime.now(UTC),
    )
    assert stale_holders_clear(connection=clean_redis, queue_names=["default", "chat"]) == []
    # another host, heartbeating recently: kept too
    _plant_lock(clean_redis, owner="live", hostname="elsewhere", pid=1, beat=datetime.now(UTC))
    assert stale_holders_clear(connection=clean_redis, queue_names=["default"]) == []
    assert clean_redis.get(RQScheduler.get_locking_key("default")) == b"live"


def test_a_lock_whose_holder_stopped_heartbeating_is_released(
    clean_redis: Any, settings: Any
) -> None:
    settings.RQ_SCHEDULER_STALE_AFTER = 30
    _plant_lock(
        clean_redis,
        owner="silent",
        hostname="elsewhere",
        pid=1,
        beat=datetime.now(UTC) - timedelta(seconds=45),
    )
    assert stale_holders_clear(connection=clean_redis, queue_names=["default"]) == ["default"]


def test_a_scheduler_whose_worker_was_killed_stops_and_releases_its_locks(
    start_worker: Any, redis_client: Any
) -> None:
    from tests.conftest import wait_until
    from tests.procfile import alive

    redis_client.flushdb()
    worker = start_worker()
    lock = RQScheduler.get_locking_key("default")

    def scheduler_pid_now() -> int | None:
        # The lock is taken a moment before the scheduler registers its pid.
        owner = redis_client.get(lock)
        pid = owner and redis_client.hget(f"rq:scheduler:{owner.decode()}", "pid")
        return int(pid) if pid else None

    scheduler_pid = wait_until(scheduler_pid_now, timeout=30)
    # when the worker alone is SIGKILLed (its scheduler process is left running)
    worker.stop(signal.SIGKILL)
    # then the orphaned scheduler notices, releases its locks and exits
    wait_until(lambda: not alive(scheduler_pid), timeout=10)
    assert redis_client.get(lock) is None
