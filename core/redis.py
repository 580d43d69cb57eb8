"""Redis connections (sync for services and jobs, async for the websocket hub)."""

from __future__ import annotations

import time
from functools import lru_cache

import redis
import redis.asyncio as aioredis
from django.conf import settings


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, health_check_interval=30)


def get_async_redis() -> aioredis.Redis:
    """A new async client: each event loop needs its own connection pool."""
    return aioredis.Redis.from_url(settings.REDIS_URL, health_check_interval=30)


def wait_for_redis(*, timeout: float = 30.0) -> None:
    """Block until Redis answers PING, or raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            get_redis().ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
