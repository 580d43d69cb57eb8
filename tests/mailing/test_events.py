"""mailing_progress and mailing_finished in the organization's event log (real worker)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import msgpack
import pytest
from django.utils import timezone

from tests.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _mailing_events(organization_id: int, mailing_id: int) -> list[tuple[int, str, dict[str, Any]]]:
    from core.events import _keys, replay_since
    from core.redis import get_redis

    base = get_redis().get(_keys(organization_id)[2])  # the organization's first event id
    assert base is not None, "no event logged at all"
    replay = replay_since(organization_id=organization_id, last_event_id=int(base) - 1)
    assert not replay.resync
    out = []
    for event_id, frame in replay.frames:
        message = json.loads(frame)
        if message["type"].startswith("mailing_"):
            data = json.loads(message["data"])
            # what crosses channels-redis must be msgpack-safe
            assert msgpack.unpackb(msgpack.packb(data)) == data
            if data["id"] == mailing_id:
                out.append((event_id, message["type"], data))
    return out


def test_completion_publishes_rate_limited_progress_then_finished_once(
    org: Any, make_client: Any, sender: Any, start_worker: Any
) -> None:
    from mailing.services import mailing_create

    # given: 40 clients sent 2 at a time, so there are ~20 batches, each of which
    # would publish progress without the rate limit
    for _ in range(40):
        make_client(org)
    sender.control(latency_ms=50)
    interval = 0.5
    start_worker(
        MAILING_BATCH_SIZE="2",
        MAILING_LANES="1",
        MAILING_PROGRESS_INTERVAL=str(interval),
    )
    now = timezone.now()
    mailing = mailing_create(
        organization=org, start_at=now, end_at=now + timedelta(minutes=5), text="Hi {{ name }}"
    )

    # when it completes
    def finished() -> bool:
        mailing.refresh_from_db()
        return mailing.status == "finished"

    wait_until(finished, timeout=40)
    events = wait_until(
        lambda: (e := _mailing_events(org.pk, mailing.pk)) and e[-1][1] == "mailing_finished" and e,
        timeout=10,
    )

    # then: some progress, rate-limited, in order, then one final event with the counts
    progress = [data for _, kind, data in events if kind == "mailing_progress"]
    finals = [data for _, kind, data in events if kind == "mailing_finished"]
    assert [kind for _, kind, _ in events][-1] == "mailing_finished"
    assert len(finals) == 1
    assert finals[0]["status"] == "finished"
    assert finals[0]["counts"]["sent"] == finals[0]["counts"]["total"] == 40
    assert finals[0]["finished_at"]
    assert progress, "no mailing_progress at all"
    assert all(p["status"] == "running" for p in progress)
    duration = (mailing.finished_at - mailing.started_at).total_seconds()
    assert len(progress) <= duration / interval + 2, (len(progress), duration)
    sent = [p["counts"]["sent"] for p in progress]
    assert sent == sorted(sent) and sent[-1] <= 40
    ids = [event_id for event_id, _, _ in events]
    assert ids == sorted(ids)
