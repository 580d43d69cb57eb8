"""Per-agent unread counts (issue 13): reading a desk clears it for that agent only."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from chat import services
from core.services import api_key_create
from tests.chat.test_workflow import _events

pytestmark = pytest.mark.django_db


def _unread(agent: Any, desk: Any) -> tuple[int, int]:
    """(from the list, from the detail) for this agent."""
    api = agent.client()
    [row] = [
        d
        for d in api.get("/api/help-desks/", {"organization": "acme"}).json()
        if d["uuid"] == str(desk.uuid)
    ]
    return row["unread_count"], api.get(f"/api/help-desks/{desk.uuid}/").json()["unread_count"]


def test_each_agent_has_their_own_count(
    agent, make_agent, org, help_desk, django_capture_on_commit_callbacks
):
    bob = make_agent("bob", org, role="agent")
    for text in ("a", "b"):
        services.message_receive(organization=org, phone=help_desk.client.phone, text=text)
    assert _unread(agent, help_desk) == (2, 2)
    assert _unread(bob, help_desk) == (2, 2)

    with django_capture_on_commit_callbacks() as callbacks:
        response = agent.client().post(f"/api/help-desks/{help_desk.uuid}/read/")
    assert response.status_code == 200 and response.json()["unread_count"] == 0
    assert _events(callbacks, "help_desk_read") == [
        {"help_desk": str(help_desk.uuid), "agent": agent.user.pk}
    ]
    assert _events(callbacks, "update_helpdesk") == []  # other agents' views do not change
    assert _unread(agent, help_desk) == (0, 0)
    assert _unread(bob, help_desk) == (2, 2)

    # an agent's own reply is not unread for anyone; the client's next message is
    services.message_create(help_desk=help_desk, text="hello", sender=bob.user)
    services.message_receive(organization=org, phone=help_desk.client.phone, text="c")
    assert _unread(agent, help_desk) == (1, 1)
    assert _unread(bob, help_desk) == (3, 3)

    # reading twice publishes once
    agent.client().post(f"/api/help-desks/{help_desk.uuid}/read/")
    with django_capture_on_commit_callbacks() as callbacks:
        agent.client().post(f"/api/help-desks/{help_desk.uuid}/read/")
    assert _events(callbacks, "help_desk_read") == []


def test_read_refuses_attackers(org, agent, make_agent, make_org, help_desk):
    services.message_receive(organization=org, phone=help_desk.client.phone, text="a")
    url = f"/api/help-desks/{help_desk.uuid}/read/"
    assert APIClient().post(url).status_code == 401
    eve = make_agent("eve", make_org("globex"))
    assert eve.client().post(url).status_code == 404
    _, raw = api_key_create(name="bot", organization=org)
    bot = APIClient()
    bot.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert bot.post(url).status_code == 403
    assert _unread(agent, help_desk) == (1, 1)
