"""What an admin request published: its on-commit callbacks run as its commit would run
them (the test's transaction never commits), then the event types read back from the
organization's event log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.events import event_log_open, replay_since


@contextmanager
def published(capture: Any, organization_id: int) -> Iterator[list[str]]:
    """`capture` is pytest-django's django_capture_on_commit_callbacks. The list it
    yields is filled, on leaving the block, with the event types published after commit."""
    types: list[str] = []
    before = event_log_open(organization_id=organization_id)  # where a websocket starts
    with capture(execute=True):
        yield types
    replay = replay_since(organization_id=organization_id, last_event_id=before)
    assert not replay.resync
    types.extend(json.loads(frame)["type"] for _, frame in replay.frames)
