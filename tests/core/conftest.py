"""Fixtures for the event-log tests (core/events.py) of this folder."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from core.events import _keys, event_append, serialize

_org_ids = itertools.count(970_001)


@pytest.fixture
def org_id(redis_client: Any) -> int:
    """A fresh organization id whose log is empty (no database row needed)."""
    organization_id = next(_org_ids)
    redis_client.delete(*_keys(organization_id))
    return organization_id


def append_events(org_id: int, n: int) -> list[int]:
    """Append `n` events to the organization's log; their ids."""
    return [
        event_append(organization_id=org_id, event_type="new_message", data=serialize({"n": i}))
        for i in range(n)
    ]
