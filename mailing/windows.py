"""Daily sending windows in each client's own time zone."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, time, timedelta
from functools import lru_cache


@lru_cache(maxsize=1024)
def zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def in_window(now: datetime, tz: str, start: time | None, end: time | None) -> bool:
    """True when `now` (aware) falls in [start, end) local time; overnight if start > end."""
    if start is None or end is None or start == end:
        return True
    local = now.astimezone(zone(tz)).time().replace(tzinfo=None)
    if start < end:
        return start <= local < end
    return local >= start or local < end


def next_opening(now: datetime, tz: str, start: time | None, end: time | None) -> datetime:
    """The first instant >= now when the window is open (now itself if it is open)."""
    if in_window(now, tz, start, end):
        return now
    assert start is not None
    local_now = now.astimezone(zone(tz))
    for days in (0, 1, 2):
        day = (local_now + timedelta(days=days)).date()
        candidate = datetime.combine(day, start, tzinfo=zone(tz))
        if candidate >= local_now:
            # A start that falls in a DST gap is moved forward by fold handling; the
            # UTC round trip normalizes it.
            return candidate.astimezone(now.tzinfo)
    return now + timedelta(days=1)  # pragma: no cover - unreachable
