"""Redis connections (sync for services and jobs, async for the websocket hub)."""

from __future__ import annotations

from functools import lru_cache

import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff

from core.resilience import REDIS_ERRORS, Outage, wait_for


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    # Timeouts: a Redis host that stopped answering (not refusing) fails the request
    # with a TimeoutError (503) instead of hanging it. RQ raises socket_timeout on its
    # worker's connection for the blocking dequeue.
    return redis.Redis.from_url(
        settings.REDIS_URL,
        health_check_interval=30,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
    )


def get_async_redis(*, reconnect: bool = True) -> aioredis.Redis:
    """A new async client: each event loop needs its own connection pool.

    `reconnect=False` for the realtime hub's pub/sub: redis-py otherwise reconnects and
    re-subscribes by itself after a short Redis restart, and whatever was published in
    between is silently missing from every socket. Without retries the failure reaches
    the hub, which closes its sockets (4500) so each client resumes with last_event_id.
    """
    if reconnect:
        return aioredis.Redis.from_url(settings.REDIS_URL, health_check_interval=30)
    return aioredis.Redis.from_url(
        settings.REDIS_URL, health_check_interval=30, retry=AsyncRetry(NoBackoff(), 0)
    )


def wait_for_redis(
    *, process: str, timeout: float | None = None, outage: Outage | None = None
) -> bool:
    """Block until Redis answers PING (forever unless `timeout`); True once it did.

    Logs once when Redis is found down and once when it answers (core/resilience.py).
    """
    return wait_for(
        lambda: get_redis().ping(),
        outage=outage or Outage("redis", process=process),
        errors=REDIS_ERRORS,
        timeout=timeout,
    )
