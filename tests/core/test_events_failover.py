"""The event log across a Redis failover that lost the old primary's last write
(core/events.py `_SEED`), simulated on one server: the promoted replica holds the log
without its last entry, the counter one lower, and the old primary's epoch.

Without the epoch check the next event got the lost event's id again, and a client
that had seen the lost event resumed after it and silently skipped the new one.
"""

from __future__ import annotations

from typing import Any

from core.events import _keys, epoch_key, event_append, event_log_open, replay_since, serialize
from tests.core.conftest import append_events


def _lose_last_write_in_a_failover(org_id: int, redis_client: Any, lost: int) -> None:
    # What the replica had when it was promoted: every write but the last one (its
    # entry and its INCR), and the epoch the old primary wrote, which is not its own.
    seq, stream, _, _ = _keys(org_id)
    redis_client.xdel(stream, f"{lost}-0")
    redis_client.set(seq, lost - 1)
    redis_client.set(epoch_key(org_id), "0" * 40)


def test_a_client_that_saw_a_lost_event_is_told_to_resync(org_id: int, redis_client: Any) -> None:
    # given: three events, all seen live by a client
    ids = append_events(org_id, 3)
    # when: the primary fails over and the third event's write was never replicated,
    # and the next event is logged on the new primary
    _lose_last_write_in_a_failover(org_id, redis_client, ids[-1])
    new = event_append(organization_id=org_id, event_type="new_message", data=serialize({}))
    # then: the new event does not reuse the lost id, nor any id near it
    assert new > ids[-1] + 1
    # and the client that saw the lost event, resuming after it, is told to resync
    # (it would otherwise wait for events after the lost id and skip `new`)
    assert replay_since(organization_id=org_id, last_event_id=ids[-1]).resync
    # and so is one that saw only the replicated ones: what was lost cannot be replayed
    assert replay_since(organization_id=org_id, last_event_id=ids[-2]).resync
    # and a client that connected on the new primary resumes normally
    after = append_events(org_id, 2)
    replay = replay_since(organization_id=org_id, last_event_id=new)
    assert not replay.resync
    assert [event_id for event_id, _ in replay.frames] == after


def test_a_websocket_joining_after_the_failover_moves_the_log_first(
    org_id: int, redis_client: Any
) -> None:
    # given: a failover that lost the last event, and no event logged since
    ids = append_events(org_id, 2)
    _lose_last_write_in_a_failover(org_id, redis_client, ids[-1])
    # when: a websocket joins (the hub opens the log before the client's replay)
    position = event_log_open(organization_id=org_id)
    # then: the log moved past every id handed out before, so the client that saw only
    # the first event is told to resync rather than resuming over the lost one
    assert position > ids[-1]
    assert replay_since(organization_id=org_id, last_event_id=ids[0]).resync
    # and the `hello` position it is given resumes without a resync
    assert not replay_since(organization_id=org_id, last_event_id=position).resync


def test_no_failover_no_move(org_id: int, redis_client: Any) -> None:
    # the epoch matches the server's own: ids continue one by one, opens change nothing
    ids = append_events(org_id, 2)
    assert event_log_open(organization_id=org_id) == ids[-1]
    assert append_events(org_id, 1) == [ids[-1] + 1]
    # and a log written before epochs existed adopts the server's without moving
    redis_client.delete(epoch_key(org_id))
    assert append_events(org_id, 1) == [ids[-1] + 2]
    assert redis_client.get(epoch_key(org_id)) not in (None, b"")
