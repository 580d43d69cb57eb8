"""The console's pickers and settings (issue 13): members, teams, the caller's preferences."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from core.models import AgentPreference, Team
from core.services import api_key_create

pytestmark = pytest.mark.django_db


def _integration(org, scopes=("read", "agent", "admin")):
    _, raw = api_key_create(name="bot", organization=org, scopes=list(scopes))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def test_members_and_teams_of_ones_own_organization_only(agent, make_agent, make_org, org):
    bob = make_agent("bob", org, role="agent")
    bob.user.first_name, bob.user.last_name = "Bob", "Stone"
    bob.user.save()
    Team.objects.create(organization=org, name="Billing", slug="billing")
    globex = make_org("globex")
    eve = make_agent("eve", globex)
    Team.objects.create(organization=globex, name="Theirs", slug="theirs")

    members = agent.client().get("/api/organizations/acme/members/")
    assert members.status_code == 200, members.content
    assert members.json() == [
        {"id": agent.user.pk, "username": "alice", "name": "alice", "role": "admin",
         "is_available": True},
        {"id": bob.user.pk, "username": "bob", "name": "Bob Stone", "role": "agent",
         "is_available": True},
    ]  # fmt: skip
    teams = agent.client().get("/api/teams/", {"organization": "acme"}).json()
    assert [t["name"] for t in teams] == ["Billing"]

    assert eve.client().get("/api/organizations/acme/members/").status_code == 404
    assert eve.client().get("/api/teams/", {"organization": "acme"}).status_code == 404
    assert [t["name"] for t in eve.client().get("/api/teams/").json()] == ["Theirs"]
    assert APIClient().get("/api/organizations/acme/members/").status_code == 401
    assert APIClient().get("/api/teams/").status_code == 401
    assert _integration(org).get("/api/organizations/acme/members/").status_code == 403
    assert _integration(org, ()).get("/api/teams/").status_code == 403
    bad = agent.client().get("/api/organizations/%00%27/members/")
    assert bad.status_code in (400, 404)  # a NUL byte is refused before routing


def test_preferences_default_then_saved_for_that_person_only(agent, make_agent, org):
    api = agent.client()
    assert api.get("/api/me/preferences/").json() == {
        "language": "",
        "time_zone": "",
        "notify_desktop": False,
        "notify_sound": False,
    }
    assert not AgentPreference.objects.exists()  # reading writes nothing

    saved = api.patch("/api/me/preferences/", {"language": "ru", "notify_sound": True})
    assert saved.status_code == 200, saved.content
    assert saved.json() == {
        "language": "ru",
        "time_zone": "",
        "notify_desktop": False,
        "notify_sound": True,
    }
    assert api.get("/api/me/preferences/").json()["language"] == "ru"
    bob = make_agent("bob", org, role="agent")
    assert bob.client().get("/api/me/preferences/").json()["language"] == ""


@pytest.mark.parametrize(
    "body",
    [
        {"language": "xx"},
        {"language": ["ru"]},
        {"notify_desktop": "maybe"},
        {"language": "r" * 500},
    ],
)
def test_hostile_preferences_are_400(agent, body):
    response = agent.client().patch("/api/me/preferences/", body, format="json")
    assert response.status_code == 400
    assert set(body) <= set(response.json()["error"]["fields"])


def test_preferences_refuse_anonymous_and_integration_keys(org):
    assert APIClient().get("/api/me/preferences/").status_code == 401
    bot = _integration(org)
    assert bot.get("/api/me/preferences/").status_code == 403
    assert bot.patch("/api/me/preferences/", {"notify_sound": True}).status_code == 403
