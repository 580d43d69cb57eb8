"""A job that stands for a campaign's batch in flight: it holds its worker until the test
releases it (tests/core/test_urgent_worker.py). Imported by real RQ worker processes."""

from __future__ import annotations

import time

from core.redis import get_redis


def hold(key: str) -> None:
    """Say it started, then run until `<key>:release` exists (at most 120 s)."""
    redis = get_redis()
    redis.set(f"{key}:started", 1, ex=300)
    deadline = time.monotonic() + 120
    while not redis.exists(f"{key}:release") and time.monotonic() < deadline:
        time.sleep(0.05)
