"""Boundaries of a resume in the event log (core/events.py), against a real Redis.

Each test pins a line of `replay_since` that a small slip would break silently (found
by planting bugs with contrib/mutation.py, see docs/testing.md): the `base` check (a
client holding an id from before the counter was lost must resync, not skip what
happened in between), the off-by-one of a resume (from N: exactly N+1.., from the
current id: nothing), the edge of what retention still keeps, and a resume from the
position a new organization's first `hello` names (or from 0 on a log with no counter).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.events import _keys, event_log_open, replay_since
from tests.conftest import wait_until
from tests.core.conftest import append_events


def _ids(org_id: int, last_event_id: int) -> list[int]:
    replay = replay_since(organization_id=org_id, last_event_id=last_event_id)
    assert not replay.resync, f"resync from {last_event_id}"
    return [event_id for event_id, _ in replay.frames]


def _redis_micros(client: Any) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def test_resume_from_n_replays_exactly_the_ids_after_n(org_id: int) -> None:
    ids = append_events(org_id, 6)
    for i, last in enumerate(ids):
        assert _ids(org_id, last) == ids[i + 1 :]
    # the one before the first: everything, nothing skipped and nothing repeated
    assert _ids(org_id, ids[0] - 1) == ids


def test_resume_from_the_current_id_replays_nothing_and_is_not_a_resync(org_id: int) -> None:
    ids = append_events(org_id, 3)
    replay = replay_since(organization_id=org_id, last_event_id=ids[-1])
    assert replay == type(replay)(frames=[], resync=False)
    # one past the current id was never handed out: the client's position is unknown
    assert replay_since(organization_id=org_id, last_event_id=ids[-1] + 1).resync


def test_resume_at_the_edge_of_what_retention_keeps(org_id: int, redis_client: Any) -> None:
    ids = append_events(org_id, 8)
    redis_client.xtrim(_keys(org_id)[1], maxlen=5, approximate=False)
    kept = ids[3:]
    # the last id before the oldest kept one: every kept event, no resync
    assert _ids(org_id, ids[2]) == kept
    # one further back, the event after it (ids[2]) is gone: resync, not a silent gap
    assert replay_since(organization_id=org_id, last_event_id=ids[1]).resync
    assert replay_since(organization_id=org_id, last_event_id=0).resync


def test_lost_counter_with_the_log_still_there_says_resync(org_id: int, redis_client: Any) -> None:
    # given: a client that saw the first two of three events
    old = append_events(org_id, 3)
    # when: the counter (and its base) is lost while the log stream survives (evicted
    # under memory pressure, or restored from an older snapshot), and new events follow
    start = _redis_micros(redis_client)
    wait_until(lambda: _redis_micros(redis_client) > start + 1000)
    seq, _, base, _ = _keys(org_id)
    redis_client.delete(seq, base)
    new = append_events(org_id, 2)
    assert new[0] > old[-1] + 1  # re-seeded from the clock: a gap of ids nobody holds
    # then: what was published while the counter was gone cannot be replayed, so the
    # client is told to resync (the next kept event, old[2], is right after its id, so
    # only the `base` check knows that a gap follows)
    assert replay_since(organization_id=org_id, last_event_id=old[1]).resync
    assert replay_since(organization_id=org_id, last_event_id=old[2]).resync
    # and a client that connected after the reset resumes normally
    assert _ids(org_id, new[0]) == [new[1]]


def test_resume_from_the_first_hello_replays_every_kept_event(
    org_id: int, redis_client: Any
) -> None:
    # given: the position a new organization's first hello names
    first = event_log_open(organization_id=org_id)
    ids = append_events(org_id, 4)
    # then: a resume from it replays every event, the first one included
    assert _ids(org_id, first) == ids
    # and once the oldest is trimmed away, the same resume must resync
    redis_client.xtrim(_keys(org_id)[1], maxlen=3, approximate=False)
    assert replay_since(organization_id=org_id, last_event_id=first).resync


def test_resume_from_zero_on_a_log_with_no_counter(org_id: int) -> None:
    # nothing was ever logged: a client at 0 missed nothing and is not sent to resync
    replay = replay_since(organization_id=org_id, last_event_id=0)
    assert replay == type(replay)(frames=[], resync=False)
    # a client holding a real id did see events, which are gone with the counter
    assert replay_since(organization_id=org_id, last_event_id=1).resync


# --- publishing: after commit only; ephemeral frames live but not logged ---------------------


@pytest.mark.django_db
def test_publish_waits_for_the_commit_and_a_rollback_publishes_nothing(
    org_id: int, redis_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from django.db import transaction

    from core.events import publish_on_commit

    stream = _keys(org_id)[1]
    # a transaction that rolls back: nobody hears of what it wrote
    with pytest.raises(RuntimeError), transaction.atomic():
        publish_on_commit(org_id, "new_message", {"n": 0})
        raise RuntimeError("rolled back")
    assert redis_client.xlen(stream) == 0
    # one that commits: the event is appended at the commit, not before
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        publish_on_commit(org_id, "new_message", {"n": 1})
    assert redis_client.xlen(stream) == 0
    assert len(callbacks) == 1
    callbacks[0]()
    ((_, fields),) = redis_client.xrange(stream)
    assert fields[b"f"].startswith(b'{"type": "new_message", "id": ')


@pytest.mark.django_db
def test_events_of_one_change_go_in_one_round_trip_in_order_live_and_logged(
    org_id: int, redis_client: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    from core import events
    from core.events import live_channel, publish_many_on_commit

    script_calls: list[str] = []
    real_script = events._script

    def counting_script(source: str) -> Any:
        script = real_script(source)

        def call(**kwargs: Any) -> Any:
            script_calls.append(source)
            return script(**kwargs)

        return call

    monkeypatch.setattr(events, "_script", counting_script)

    live = redis_client.pubsub()
    live.subscribe(live_channel(org_id))
    assert live.get_message(timeout=5)["type"] == "subscribe"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        publish_many_on_commit(org_id, [("new_message", {"n": 1}), ("update_helpdesk", {"n": 2})])
    assert len(callbacks) == 1
    callbacks[0]()
    assert len(script_calls) == 1, "not one round trip"
    entries = redis_client.xrange(_keys(org_id)[1])
    logged = [(int(eid.split(b"-")[0]), fields[b"f"]) for eid, fields in entries]
    assert [json.loads(frame)["type"] for _, frame in logged] == ["new_message", "update_helpdesk"]
    assert logged[1][0] == logged[0][0] + 1
    heard = []
    while len(heard) < 2:
        message = live.get_message(timeout=5)
        assert message is not None, f"heard only {heard}"
        heard.append(message["data"])
    assert heard == [f"{eid} ".encode() + frame for eid, frame in logged]
    live.close()


def test_an_ephemeral_frame_goes_live_with_id_zero_and_is_not_logged(
    org_id: int, redis_client: Any
) -> None:
    from core.events import ephemeral_frame, ephemeral_publish, live_channel

    pubsub = redis_client.pubsub()
    pubsub.subscribe(live_channel(org_id))
    wait_until(lambda: pubsub.get_message(timeout=0.1) is not None)  # the subscribe ack
    ephemeral_publish(organization_id=org_id, event_type="typing", data={"who": "alice"})
    got: list[Any] = []
    wait_until(lambda: got.append(pubsub.get_message(timeout=0.1)) or got[-1] is not None)
    pubsub.close()
    raw = got[-1]["data"]
    raw = raw.decode() if isinstance(raw, bytes) else raw
    assert raw == "0 " + ephemeral_frame("typing", {"who": "alice"})
    assert redis_client.xlen(_keys(org_id)[1]) == 0


def test_log_stream_lost_while_the_counter_survives_says_resync(
    org_id: int, redis_client: Any
) -> None:
    # the stream alone evicted (memory pressure): the events after the client's id are
    # gone although the counter says they happened
    ids = append_events(org_id, 3)
    redis_client.delete(_keys(org_id)[1])
    assert replay_since(organization_id=org_id, last_event_id=ids[1]).resync
    assert not replay_since(organization_id=org_id, last_event_id=ids[2]).resync


def test_log_without_its_base_key_still_replays(org_id: int, redis_client: Any) -> None:
    # `base` evicted alone: nothing says the counter restarted, so the log is trusted
    ids = append_events(org_id, 3)
    redis_client.delete(_keys(org_id)[2])
    assert _ids(org_id, ids[0]) == ids[1:]
