"""Rate limits: one fixed-window counter in Redis, shared by every process.

    retry_after = hit("login:ip:10.0.0.1", limit=10, window=60)
    if retry_after: refuse, telling the caller to come back in `retry_after` seconds

One `INCR` plus, on a window's first hit, an `EXPIRE` (pipelined: one round trip). A
fixed window lets through at most 2 x limit across a window boundary, which is fine
for abuse limits and keeps the hot path at one round trip. Used by the DRF throttle,
the console and admin login, the monitoring fast path and the websocket consumer, so
there is one place that decides and one key layout (`rl:<bucket>:<window start>`).

When Redis is unreachable the limit is not enforced (fail open, logged once per
outage): refusing every login and API call because the counter store is down would
turn a Redis blip into a full outage, and the limits guard against abuse, not
correctness.
"""

from __future__ import annotations

import math
import time

import redis

from core.logging import get_logger
from core.redis import get_redis

log = get_logger(__name__)

_redis_down = False


def hit(bucket: str, *, limit: int, window: float) -> float:
    """Count one hit on `bucket`; 0 when allowed, else seconds until the window ends.

    `limit <= 0` disables the limit.
    """
    global _redis_down
    if limit <= 0:
        return 0.0
    now = time.time()
    start = math.floor(now / window) * window
    key = f"rl:{bucket}:{int(start)}"
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, math.ceil(window) + 1, nx=True)
        count = int(pipe.execute()[0])
    except redis.RedisError as exc:
        if not _redis_down:
            _redis_down = True
            log.warning("ratelimit_unavailable", bucket=bucket, error=str(exc))
        return 0.0
    if _redis_down:
        _redis_down = False
        log.info("ratelimit_available")
    if count <= limit:
        return 0.0
    return max(start + window - now, 0.001)


def parse_rate(rate: str) -> tuple[int, float]:
    """ "100/min" -> (100, 60.0). Periods: s, sec, min, h, hour, day (first letter counts)."""
    count, _, period = rate.partition("/")
    seconds = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}[period.strip()[:1].lower()]
    return int(count), seconds
