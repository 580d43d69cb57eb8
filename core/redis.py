"""Redis connections (sync for services and jobs, async for the websocket hub and rate
limits), built from one URL for every process.

`REDIS_URL` takes three forms:

- `redis://[[user]:password@]host:port/db` (or `rediss://`, `unix://`): one server.
- `redis+sentinel://[[user]:password@]host1:26379,host2:26379,.../service[/db]`: the
  primary of a Sentinel-managed service. Each new connection asks the sentinels where
  the primary is, and a connection to a demoted primary (READONLY) is dropped, so after
  a failover the next command (redis-py retries a connection error about ten times
  over ~5 s) lands on the new primary. The user and password are the Redis servers';
  sentinels that require their own come as `?sentinel_username=...&sentinel_password=...`.
- `redis+cluster://[[user]:password@]host1:7000,host2:7001,...`: a Redis Cluster
  (`get_redis` only; db 0). The event log (core/events.py) runs on it: its keys carry a
  per-organization hash tag. RQ, the websocket hub and the rate limits need one primary
  (`get_async_redis` and core/jobs.py refuse a cluster URL): a deployment uses Sentinel.

Everything that talks to Redis gets its client here, so a failover is followed by the
event log, RQ (core/jobs.py, the worker and cron commands) and the rate limits alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from core.resilience import REDIS_ERRORS, Outage, wait_for

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"


@dataclass(frozen=True)
class Nodes:
    """A parsed `redis+sentinel://` or `redis+cluster://` URL."""

    scheme: str
    hosts: tuple[tuple[str, int], ...]
    service: str  # the Sentinel service name ("" for a cluster)
    db: int
    username: str | None
    password: str | None
    sentinel_username: str | None
    sentinel_password: str | None


def parse_nodes_url(url: str) -> Nodes | None:
    """The nodes of a Sentinel or Cluster URL; None for a plain `redis://` one."""
    parts = urlsplit(url)
    if parts.scheme not in (SENTINEL_SCHEME, CLUSTER_SCHEME):
        return None
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    hosts = []
    for item in hostlist.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ImproperlyConfigured(f"REDIS_URL: expected host:port, got {item!r}")
        hosts.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == SENTINEL_SCHEME:
        if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
            raise ImproperlyConfigured("REDIS_URL: redis+sentinel://hosts/<service>[/<db>]")
        service, db = unquote(path[0]), int(path[1]) if len(path) == 2 else 0
    else:
        if path:
            raise ImproperlyConfigured("REDIS_URL: a redis+cluster:// URL has no path (db 0)")
        service, db = "", 0
    return Nodes(
        scheme=parts.scheme,
        hosts=tuple(hosts),
        service=service,
        db=db,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_username=query.get("sentinel_username"),
        sentinel_password=query.get("sentinel_password"),
    )


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme == CLUSTER_SCHEME


def _sentinel_kwargs(nodes: Nodes, kwargs: dict[str, Any]) -> dict[str, Any]:
    # The sentinels get the same socket timeouts: a dead sentinel is skipped quickly.
    own = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    if nodes.sentinel_password is not None:
        own.update(username=nodes.sentinel_username, password=nodes.sentinel_password)
    return own


# What redis-py gives a client built from a plain URL (about ten tries over ~5 s), and
# what a Sentinel-managed pool does not get by itself: the retries are what carry a
# command over a failover (each new connection asks the sentinels for the primary).
_RETRIES = 10


def _backoff() -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(base=0.01, cap=1.0)


class _SentinelConnection(redis.sentinel.SentinelManagedConnection):
    """A connection to the service's primary that asks the sentinels at EVERY reconnect.

    redis-py (8.1) reconnects a dropped connection inside a command's retries through
    `connect_check_health`, which skips the sentinel lookup that `connect` does: every
    retry then reconnects to the dead or demoted primary, and the command fails although
    the sentinels already name the new one (tests/core/test_sentinel.py).
    """

    _resolving = False

    def connect_to(self, address: tuple[str, int]) -> None:
        self._resolving = True
        try:
            super().connect_to(address)
        finally:
            self._resolving = False

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if not self._resolving and not self._sock:
            self.connect()  # asks the sentinels, then connects through connect_to
            return
        super().connect_check_health(check_health, retry_socket_connect)


class _AsyncSentinelConnection(aiosentinel.SentinelManagedConnection):
    """`_SentinelConnection` for asyncio clients."""

    _resolving = False

    async def connect_to(self, address: tuple[str, int]) -> None:
        self._resolving = True
        try:
            await super().connect_to(address)
        finally:
            self._resolving = False

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if not self._resolving and not self.is_connected:
            await self.connect()
            return
        await super().connect_check_health(check_health, retry_socket_connect)


def redis_client(url: str, **kwargs: Any) -> redis.Redis:
    """A sync client for any REDIS_URL form; `kwargs` are connection options."""
    nodes = parse_nodes_url(url)
    if nodes is None:
        return redis.Redis.from_url(url, **kwargs)
    creds: dict[str, Any] = {"username": nodes.username, "password": nodes.password}
    if nodes.scheme == CLUSTER_SCHEME:
        kwargs.pop("health_check_interval", None)
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in nodes.hosts], **creds, **kwargs
        )
        # Same commands for the keys the callers use; typed as the common client.
        return cluster  # type: ignore[return-value]
    sentinel = redis.sentinel.Sentinel(
        list(nodes.hosts), sentinel_kwargs=_sentinel_kwargs(nodes, kwargs)
    )
    kwargs.setdefault("retry", Retry(_backoff(), _RETRIES))
    return sentinel.master_for(
        nodes.service, connection_class=_SentinelConnection, db=nodes.db, **creds, **kwargs
    )


class _BlockingSentinelPool(aiosentinel.SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """Sentinel-managed connections, at most `max_connections`, waiting `timeout` for one."""


def async_redis_client(
    url: str, *, max_connections: int | None = None, pool_timeout: float = 0, **kwargs: Any
) -> aioredis.Redis:
    """An asyncio client (one per event loop: a pool belongs to its loop).

    With `max_connections`, the pool is bounded and a caller waits up to `pool_timeout`
    seconds for a free connection instead of opening another one.
    """
    nodes = parse_nodes_url(url)
    if nodes is not None and nodes.scheme == CLUSTER_SCHEME:
        raise ImproperlyConfigured(
            "REDIS_URL: the websocket hub and rate limits need one primary "
            "(redis:// or redis+sentinel://), not a cluster"
        )
    bounded: dict[str, Any] = {"max_connections": max_connections, "timeout": pool_timeout}
    if nodes is None:
        if max_connections is None:
            return aioredis.Redis.from_url(url, **kwargs)
        pool = aioredis.BlockingConnectionPool.from_url(url, **bounded, **kwargs)
        return aioredis.Redis(connection_pool=pool)
    sentinel = aiosentinel.Sentinel(
        list(nodes.hosts), sentinel_kwargs=_sentinel_kwargs(nodes, kwargs)
    )
    creds: dict[str, Any] = {"username": nodes.username, "password": nodes.password}
    kwargs.setdefault("retry", AsyncRetry(_backoff(), _RETRIES))
    kwargs["connection_class"] = _AsyncSentinelConnection
    if max_connections is None:
        return sentinel.master_for(nodes.service, db=nodes.db, **creds, **kwargs)
    return sentinel.master_for(
        nodes.service,
        connection_pool_class=_BlockingSentinelPool,
        db=nodes.db,
        **creds,
        **bounded,
        **kwargs,
    )


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    # Timeouts: a Redis host that stopped answering (not refusing) fails the request
    # with a TimeoutError (503) instead of hanging it. RQ raises socket_timeout on its
    # worker's connection for the blocking dequeue.
    return redis_client(
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
        return async_redis_client(settings.REDIS_URL, health_check_interval=30)
    return async_redis_client(
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
