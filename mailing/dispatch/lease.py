"""Lane leases in Redis: one live job per (mailing, lane).

A lane's key holds the running job's claim token (refreshed every batch, expiring
after `lease_ttl()` if its worker dies) or `scheduled` while the lane's next job
waits in a queue; the sweeper only enqueues a lane whose key is absent.
"""

from __future__ import annotations

from django.conf import settings

from core.redis import get_redis

_ACQUIRE = """
local v = redis.call('GET', KEYS[1])
if (not v) or v == 'scheduled' or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""
_HANDOVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end
  redis.call('SET', KEYS[1], 'scheduled', 'EX', ARGV[2])
  return 1
end
return 0
"""


def lane_key(mailing_id: int, lane: int) -> str:
    return f"mailing:lane:{int(mailing_id)}:{int(lane)}"


def lease_ttl() -> int:
    # Longer than one batch (an HTTP timeout plus database time), short enough that
    # a killed worker's lane is taken over soon.
    return int(settings.SENDER_TIMEOUT * 2 + 5)


def lease_acquire(key: str, token: str) -> bool:
    """Take (or refresh) the lease; False when another live job holds it."""
    return bool(get_redis().eval(_ACQUIRE, 1, key, token, lease_ttl()))  # type: ignore[no-untyped-call]


def lease_handover(key: str, token: str, ttl: int) -> None:
    """Release the lease (ttl 0) or mark the lane 'scheduled' for `ttl` seconds."""
    get_redis().eval(_HANDOVER, 1, key, token, str(max(int(ttl), 0)))  # type: ignore[no-untyped-call]


def lease_schedule(key: str) -> bool:
    """Mark a lane nobody holds as 'scheduled' (the sweeper, before enqueueing it)."""
    return bool(get_redis().set(key, "scheduled", nx=True, ex=lease_ttl() + 60))
