"""Resume from a new organization's first `hello` (issue 10 item 7).

A new organization has no event counter yet. Its first `hello` used to say
`last_event_id: 0`, and a client resuming from 0 was told to resync although every
event was still kept. Joining now seeds the counter, so the `hello` names a real
position from which a resume replays everything; an id handed out before a Redis
restart still gets `resync_required`.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.events import _keys, event_log_open, replay_since
from tests.core.conftest import append_events
from tests.wsclient import WS, data


def test_position_of_a_new_log_replays_every_later_event(org_id: int) -> None:
    # given: the position handed to the first client of an organization with no event
    first = event_log_open(organization_id=org_id)
    assert first > 0
    assert event_log_open(organization_id=org_id) == first  # opening again moves nothing
    # when: events happen, and the client resumes from that position
    ids = append_events(org_id, 3)
    replay = replay_since(organization_id=org_id, last_event_id=first)
    # then: it gets every one of them, in order
    assert not replay.resync
    assert [event_id for event_id, _ in replay.frames] == ids == [first + 1, first + 2, first + 3]


def test_position_from_before_a_redis_restart_still_says_resync(
    org_id: int, redis_client: Any
) -> None:
    # given: a client told the position of a new log, then events it did not see
    before = event_log_open(organization_id=org_id)
    append_events(org_id, 2)
    # when: Redis loses the log (restart without persistence) and a new client joins
    redis_client.delete(*_keys(org_id))
    after = event_log_open(organization_id=org_id)
    # then: the new position is above every old id, and the old client must resync
    assert after > before + 2
    assert replay_since(organization_id=org_id, last_event_id=before).resync
    append_events(org_id, 1)
    assert replay_since(organization_id=org_id, last_event_id=before).resync
    assert not replay_since(organization_id=org_id, last_event_id=after).resync


@pytest.mark.django_db(transaction=True)
def test_first_hello_of_a_new_organization_is_a_position_to_resume_from(
    start_web: Any, agent: Any, help_desk: Any, sender: Any, redis_client: Any
) -> None:
    # given: an organization with no event yet, and a first websocket through daphne
    redis_client.delete(*_keys(agent.organization.pk))
    web = start_web()
    url = f"{web.ws_url}/ws/chat/{agent.organization.slug}/?token={agent.key}"
    first = WS(url)
    hello = first.recv()
    assert hello["type"] == "hello"
    first.close()
    # when: events happen while it is away, and it resumes from what its hello said
    response = agent.http(web.url).post(
        "/api/send-message/", data={"help_desk": str(help_desk.uuid), "message": "missed"}
    )
    assert response.status_code == 201, response.text
    again = WS(f"{url}&last_event_id={hello['last_event_id']}")
    # then: the missed events are replayed (no resync_required), then the new hello
    frame = again.recv_until(lambda f: f["type"] in ("new_message", "resync_required"))
    assert frame["type"] == "new_message", frame
    assert data(frame)["message"] == "missed"
    assert frame["id"] == hello["last_event_id"] + 1
    resumed = again.recv_until(lambda f: f["type"] == "hello")
    assert not any(f["type"] == "resync_required" for f in again.frames)
    assert resumed["last_event_id"] > frame["id"]
