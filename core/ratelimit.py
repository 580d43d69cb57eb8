"""Rate limits: one fixed-window counter in Redis, shared by every process.

    retry_after = hit("login:ip:10.0.0.1", limit=10, window=60)
    if retry_after: refuse, telling the caller to come back in `retry_after` seconds

One `INCR` plus, on a window's first hit, an `EXPIRE` (pipelined: one round trip). A
fixed window lets through at most 2 x limit across a window boundary, which is fine
for abuse limits and keeps the hot path at one round trip. Used by the DRF throttle,
the console and admin login, the monitoring fast path and the websocket consumer, so
there is one place that decides and one key layout (`rl:<bucket>:<window start>`).
`ahit` is the same count for code running on an event loop (the fast path), so a
counter store that answers slowly never stalls every socket of the process.

When Redis is unreachable the limit is not enforced (fail open, logged once per
outage): refusing every login and API call because the counter store is down would
turn a Redis blip into a full outage, and the limits guard against abuse, not
correctness. The counters use their own connections with short timeouts
(`RATELIMIT_REDIS_TIMEOUT`): a Redis that stops answering (rather than refusing)
costs one request that long, after which the counters are skipped for a second
before the next try, instead of every request waiting on a dead socket.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
import weakref
from typing import Any

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core.logging import get_logger
from core.redis import async_redis_client, redis_client

log = get_logger(__name__)

# After a failure, skip Redis for this long (per Redis URL): fail open at no cost.
_RETRY_AFTER_FAILURE = 1.0
_down_until: dict[str, float] = {}

# Add ARGV[1] hits; a key this call created gets its TTL. One command: less client work
# than an INCR + EXPIRE pipeline (about half the CPU per call in redis-py), and no
# `EXPIRE NX` (Redis 7) needed.
_COUNT = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return n
"""

# Take back one hit, never below zero and never creating a key (refund()).
_REFUND = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


@functools.lru_cache(maxsize=4)
def _client(url: str) -> tuple[redis.Redis, Any]:
    timeout = settings.RATELIMIT_REDIS_TIMEOUT
    client = redis_client(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return client, client.register_script(_COUNT)


class _LoopState:
    """Per event loop: its client (a connection pool belongs to its loop) and the hits
    waiting for the next round trip of their key."""

    def __init__(self, url: str) -> None:
        timeout = settings.RATELIMIT_REDIS_TIMEOUT
        # Bounded: a burst of a thousand concurrent posts shares a few connections
        # (waiting at most `timeout` for one) instead of opening a thousand.
        self.client = async_redis_client(
            url,
            max_connections=32,
            pool_timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self.count = self.client.register_script(_COUNT)
        self.waiting: dict[str, list[asyncio.Future[int]]] = {}
        self.flushers: set[asyncio.Future[None]] = set()


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _LoopState]]
_loops = weakref.WeakKeyDictionary()


def _loop_state(url: str) -> _LoopState:
    per_loop = _loops.setdefault(asyncio.get_running_loop(), {})
    state = per_loop.get(url)
    if state is None:
        state = per_loop[url] = _LoopState(url)
    return state


def _window(bucket: str, window: float, now: float) -> tuple[str, float]:
    start = math.floor(now / window) * window
    return f"rl:{bucket}:{int(start)}", start


def _usable(url: str, now: float) -> bool:
    return _down_until.get(url, 0.0) <= now


def _failed(url: str, bucket: str, exc: Exception) -> float:
    if url not in _down_until:
        log.warning("ratelimit_unavailable", bucket=bucket, error=f"{type(exc).__name__}: {exc}")
    _down_until[url] = time.time() + _RETRY_AFTER_FAILURE
    return 0.0


def _counted(url: str, count: int, limit: int, start: float, window: float, now: float) -> float:
    if _down_until.pop(url, None) is not None:
        log.info("ratelimit_available")
    if count <= limit:
        return 0.0
    return max(start + window - now, 0.001)


def hit(bucket: str, *, limit: int, window: float) -> float:
    """Count one hit on `bucket`; 0 when allowed, else seconds until the window ends.

    `limit <= 0` disables the limit.
    """
    if limit <= 0:
        return 0.0
    now = time.time()
    url = settings.REDIS_URL
    if not _usable(url, now):
        return 0.0
    key, start = _window(bucket, window, now)
    try:
        count = int(_client(url)[1](keys=[key], args=[1, math.ceil(window) + 1]))
    except redis.RedisError as exc:
        return _failed(url, bucket, exc)
    return _counted(url, count, limit, start, window, now)


async def ahit(bucket: str, *, limit: int, window: float) -> float:
    """`hit` for a coroutine: the same key, the same count, without blocking the loop.

    Hits on one key that arrive while that key's round trip is under way go together
    in the next one (`INCRBY n`; each caller gets its own position in the count, so
    the limit stays exact): a burst from one key costs a few round trips, not one per
    request.
    """
    if limit <= 0:
        return 0.0
    now = time.time()
    url = settings.REDIS_URL
    if not _usable(url, now):
        return 0.0
    key, start = _window(bucket, window, now)
    state = _loop_state(url)
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    queue = state.waiting.get(key)
    if queue is None:
        state.waiting[key] = [future]
        flusher = asyncio.ensure_future(_flush(state, key, math.ceil(window) + 1))
        state.flushers.add(flusher)  # the loop holds tasks weakly
        flusher.add_done_callback(state.flushers.discard)
    else:
        queue.append(future)
    try:
        count = await future
    except (redis.RedisError, OSError) as exc:
        return _failed(url, bucket, exc)
    return _counted(url, count, limit, start, window, now)


async def _flush(state: _LoopState, key: str, ttl: int) -> None:
    """Count the waiting hits of `key`, one round trip per batch, until none wait."""
    try:
        while state.waiting[key]:
            batch, state.waiting[key] = state.waiting[key], []
            try:
                last = int(await state.count(keys=[key], args=[len(batch), ttl]))
            except Exception as exc:
                for future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for position, future in enumerate(batch, start=last - len(batch) + 1):
                if not future.done():
                    future.set_result(position)
    finally:
        # Normally empty; on an unexpected exit, never leave a caller waiting.
        for future in state.waiting.pop(key, []):
            if not future.done():
                future.set_exception(redis.ConnectionError("rate-limit flush stopped"))


def refund(bucket: str, *, window: float) -> None:
    """Take back one hit of the current window: for limits that count only failures
    (logins) but must count every attempt up front, so that parallel attempts cannot
    all pass before the first failure is recorded. Best effort, like `hit`."""
    now = time.time()
    url = settings.REDIS_URL
    if not _usable(url, now):
        return
    key, _ = _window(bucket, window, now)
    try:
        _client(url)[0].eval(_REFUND, 1, key)
    except redis.RedisError as exc:
        _failed(url, bucket, exc)


def parse_rate(rate: str) -> tuple[int, float]:
    """ "100/min" -> (100, 60.0). Periods: s, sec, min, h, hour, day (first letter counts).

    ValueError on anything else, "0/min" disables."""
    count, _, period = rate.partition("/")
    seconds = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}.get(period.strip()[:1].lower())
    if seconds is None or not count.strip().isdigit():
        raise ValueError(f"not a rate: {rate!r}")
    return int(count), seconds


@functools.cache
def _parse_setting(name: str, value: str) -> tuple[int, float]:
    try:
        return parse_rate(value)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f'{name}={value!r}: expected "<count>/<s|min|h|day>", e.g. "60/min".'
        ) from exc


def rate(name: str) -> tuple[int, float]:
    """(limit, window seconds) of the rate setting `name` (read at each call, so a test's
    override applies); ImproperlyConfigured if malformed."""
    return _parse_setting(name, str(getattr(settings, name)))
