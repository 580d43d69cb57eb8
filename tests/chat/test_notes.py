"""Private notes (issue 13): agents only, never the client's, their own event type."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from chat.models import Message
from core.services import api_key_create
from tests.chat.test_workflow import _events

pytestmark = pytest.mark.django_db


def _notes(api: APIClient, desk: Any) -> str:
    return f"/api/help-desks/{desk.uuid}/notes/"


def test_a_note_is_listed_published_as_new_note_and_mentions_members(
    agent, make_agent, make_org, help_desk, django_capture_on_commit_callbacks
):
    bob = make_agent("bob", agent.organization, role="agent")
    make_agent("eve", make_org("globex"))
    api = agent.client()

    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(
            _notes(api, help_desk),
            {"text": "@bob can you call? cc @eve, mail bob@example.com <b>x</b>"},
            format="json",
        )

    assert response.status_code == 201, response.content
    note = response.json()
    assert note["mentions"] == [bob.user.pk]  # eve is another tenant's: plain text
    assert note["author"] == {"id": agent.user.pk, "username": "alice", "name": "alice"}
    assert note["help_desk"] == str(help_desk.uuid)
    assert note["text"].endswith("<b>x</b>")  # stored as given; the console shows text
    assert _events(callbacks, "new_note") == [note]
    assert _events(callbacks, "new_message") == []
    listed = api.get(_notes(api, help_desk)).json()
    assert [n["uuid"] for n in listed] == [note["uuid"]]


def test_a_note_never_reaches_the_client_or_the_history(agent, help_desk):
    api = agent.client()
    assert api.post(_notes(api, help_desk), {"text": "secret"}, format="json").status_code == 201
    assert not Message.objects.exists()  # nothing to deliver, no Delivery row
    history = api.get(f"/api/help-desks/{help_desk.uuid}/history/").json()
    assert history == []
    help_desk.refresh_from_db()
    assert help_desk.last_message is None


def test_attackers_get_nothing(org, agent, make_agent, make_org, help_desk):
    api = agent.client()
    api.post(_notes(api, help_desk), {"text": "secret"}, format="json")
    eve = make_agent("eve", make_org("globex"))
    url = _notes(api, help_desk)

    assert APIClient().get(url).status_code == 401
    assert APIClient().post(url, {"text": "x"}, format="json").status_code == 401
    assert eve.client().get(url).status_code == 404
    assert eve.client().post(url, {"text": "x"}, format="json").status_code == 404
    # an integration key, even one granted every scope, is not an agent
    _, raw = api_key_create(name="bot", organization=org, scopes=["read", "agent", "admin"])
    bot = APIClient()
    bot.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert bot.get(url).status_code == 403
    assert bot.post(url, {"text": "x"}, format="json").status_code == 403
    # an agent key without the agent scope reads but cannot write
    reader = make_agent("rita", org, scopes=("read",))
    assert reader.client().get(url).status_code == 200
    assert reader.client().post(url, {"text": "x"}, format="json").status_code == 403


@pytest.mark.parametrize(
    "body", [{}, {"text": ""}, {"text": "x" * 4001}, {"text": ["a"]}, {"text": {"a": 1}}]
)
def test_hostile_bodies_are_400(agent, help_desk, body):
    api = agent.client()
    response = api.post(_notes(api, help_desk), body, format="json")
    assert response.status_code == 400
    assert "text" in response.json()["error"]["fields"]


def test_the_widget_never_forwards_a_note_to_a_visitor(
    agent, org, help_desk, redis_client, django_capture_on_commit_callbacks
):
    """The contract's "never on the widget's socket": the frame as logged is not one the
    visitor translation (widget/frames.py) lets through."""
    from core.events import _keys, log_key
    from widget.frames import relevant, translate

    redis_client.delete(*_keys(org.pk)[:3])
    with django_capture_on_commit_callbacks(execute=True):
        api = agent.client()
        api.post(_notes(api, help_desk), {"text": "internal only"}, format="json")
    raws = [fields[b"f"].decode() for _, fields in redis_client.xrange(log_key(org.pk))]
    notes = [raw for raw in raws if '"new_note"' in raw[:40]]
    assert len(notes) == 1 and "internal only" in notes[0]
    assert not relevant(notes[0])
    assert translate(1, notes[0]) is None
