"""Canned replies (issue 13): admins write, agents read, one organization's only."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from core.services import api_key_create

pytestmark = pytest.mark.django_db

BODY = {"organization": "acme", "shortcut": "hello", "title": "Hello", "text": "Hi {{ name }}"}


def test_admin_creates_edits_deletes_and_agents_read(agent, make_agent, org):
    api = agent.client()  # alice is an admin
    created = api.post("/api/canned-replies/", BODY, format="json")
    assert created.status_code == 201, created.content
    reply = created.json()
    assert (reply["shortcut"], reply["text"], reply["organization"]) == (
        "hello",
        "Hi {{ name }}",
        "acme",
    )

    bob = make_agent("bob", org, role="agent")
    listed = bob.client().get("/api/canned-replies/", {"organization": "acme"})
    assert [r["shortcut"] for r in listed.json()] == ["hello"]
    url = f"/api/canned-replies/{reply['id']}/"
    assert bob.client().patch(url, {"title": "x"}, format="json").status_code == 403
    assert bob.client().delete(url).status_code == 403
    assert bob.client().post("/api/canned-replies/", BODY, format="json").status_code == 403

    edited = api.patch(url, {"text": "Bye {{ name }}"}, format="json")
    assert edited.status_code == 200 and edited.json()["text"] == "Bye {{ name }}"
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404


def test_a_shortcut_is_unique_per_organization(agent, make_agent, make_org):
    api = agent.client()
    assert api.post("/api/canned-replies/", BODY, format="json").status_code == 201
    again = api.post("/api/canned-replies/", BODY, format="json")
    assert again.status_code == 400 and "shortcut" in again.json()["error"]["fields"]
    other = make_agent("olga", make_org("globex"))
    theirs = other.client().post(
        "/api/canned-replies/", {**BODY, "organization": "globex"}, format="json"
    )
    assert theirs.status_code == 201  # the same shortcut in another organization


def test_another_tenant_anonymous_and_an_integration_key(agent, make_agent, make_org, org):
    reply = agent.client().post("/api/canned-replies/", BODY, format="json").json()
    url = f"/api/canned-replies/{reply['id']}/"
    eve = make_agent("eve", make_org("globex"))
    assert eve.client().get(url).status_code == 404
    assert eve.client().patch(url, {"title": "pwned"}, format="json").status_code == 404
    assert eve.client().delete(url).status_code == 404
    assert eve.client().get("/api/canned-replies/", {"organization": "acme"}).status_code == 404
    assert eve.client().post("/api/canned-replies/", BODY, format="json").status_code == 404
    assert APIClient().get("/api/canned-replies/").status_code == 401
    _, raw = api_key_create(name="bot", organization=org)  # default: no read, no admin
    bot = APIClient()
    bot.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert bot.get("/api/canned-replies/").status_code == 403
    assert bot.post("/api/canned-replies/", BODY, format="json").status_code == 403
    assert agent.client().get(url).json()["title"] == "Hello"


@pytest.mark.parametrize(
    "body",
    [
        {**BODY, "shortcut": "Has Space"},
        {**BODY, "shortcut": "../x"},
        {**BODY, "shortcut": ""},
        {**BODY, "title": "t" * 201},
        {**BODY, "text": "t" * 4001},
        {**BODY, "text": ["x"]},
        {"organization": "acme"},
    ],
)
def test_hostile_bodies_are_400(agent, body):
    response = agent.client().post("/api/canned-replies/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"]
