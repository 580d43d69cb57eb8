"""Assistance end to end: real daphne, real RQ worker, real websocket."""

from __future__ import annotations

import httpx
import pytest

from chat.models import AssistanceTopic
from core.models import Membership, Team, TeamMember
from core.services import api_key_create
from tests.wsclient import WS, data


@pytest.mark.django_db(transaction=True)
def test_bot_request_is_routed_announced_and_accepted_over_websocket(
    start_web, start_worker, agent, make_client
):
    # given a topic routed to a team with the agent in it, and the agent's websocket
    team = Team.objects.create(organization=agent.organization, slug="sales-team", name="Sales")
    TeamMember.objects.create(
        team=team, membership=Membership.objects.get(user=agent.user), order=0
    )
    AssistanceTopic.objects.create(organization=agent.organization, name="sales", team=team)
    client = make_client(agent.organization)
    _, bot_key = api_key_create(name="bot", organization=agent.organization)
    web = start_web()
    start_worker()
    ws = WS(f"{web.ws_url}/ws/chat/{agent.organization.slug}/?token={agent.key}")
    assert ws.recv()["type"] == "hello"

    # when the bot asks for a human
    response = httpx.post(
        f"{web.url}/assistance/",
        json={"topic": "sales", "description": "wants a quote", "phone": client.phone},
        headers={"Authorization": f"Bearer {bot_key}"},
    )
    assert response.status_code == 202, response.text
    request_id = response.json()["id"]

    # then the worker routes it and the agent hears of it
    requested = data(ws.recv_until(lambda f: f["type"] == "assistance_requested", timeout=30))
    assert requested["id"] == request_id
    assert requested["assignee"] == agent.user.username
    assert requested["help_desk"] is not None
    assert requested["description"] == "wants a quote"

    # when the agent accepts, the accept is an event too
    accepted = httpx.post(
        f"{web.url}/api/assistance/{request_id}/accept/",
        headers={"Authorization": f"Bearer {agent.key}"},
    )
    assert accepted.status_code == 200, accepted.text
    frame = ws.recv_until(lambda f: f["type"] == "assistance_accepted")
    assert data(frame)["accepted_by"] == agent.user.username
    assert data(frame)["status"] == "accepted"
    again = httpx.post(
        f"{web.url}/api/assistance/{request_id}/accept/",
        headers={"Authorization": f"Bearer {agent.key}"},
    )
    assert again.status_code == 409
