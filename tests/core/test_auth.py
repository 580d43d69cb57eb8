"""API keys (hashed, revocable, scoped) and organization isolation over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from chat.models import Client, HelpDesk, Message
from core.models import ApiKey

pytestmark = pytest.mark.django_db


def _bearer(raw: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


@pytest.fixture
def acme_data(agent: Any, help_desk: Any) -> dict[str, Any]:
    """acme's help desk, client and one sent message."""
    response = agent.client().post(
        "/api/send-message/", {"help_desk": str(help_desk.uuid), "message": "secret"}
    )
    assert response.status_code == 201
    return {
        "help_desk": help_desk,
        "client": help_desk.client,
        "message": Message.objects.get(uuid=response.json()["uuid"]),
    }


@pytest.fixture
def outsider(make_agent: Any, make_org: Any) -> Any:
    return make_agent("eve", make_org("other"))


def test_outsider_gets_404_for_every_object_of_another_organization(acme_data, outsider):
    api = outsider.client()
    desk, client, message = acme_data["help_desk"], acme_data["client"], acme_data["message"]
    requests = [
        ("get", f"/api/help-desks/{desk.uuid}/", None),
        ("patch", f"/api/help-desks/{desk.uuid}/", {"status": "closed"}),
        ("delete", f"/api/help-desks/{desk.uuid}/", None),
        ("get", f"/api/help-desks/{desk.uuid}/history/", None),
        ("post", f"/api/help-desks/{desk.uuid}/read/", None),
        ("post", f"/api/messages/{message.uuid}/receipts/", {"status": "read"}),
        ("post", f"/api/messages/{message.uuid}/retry/", None),
        ("get", f"/api/clients/{client.uuid}/", None),
        ("patch", f"/api/clients/{client.uuid}/", {"name": "pwned"}),
        ("put", f"/api/clients/{client.uuid}/", {"name": "pwned", "phone": "79990000000"}),
        ("delete", f"/api/clients/{client.uuid}/", None),
        ("get", "/api/help-desks/?organization=acme", None),
        ("get", "/api/clients/?organization=acme", None),
    ]
    for method, url, body in requests:
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code == 404, (method, url, response.status_code)
        assert b"secret" not in response.content

    # send-message to their desk: an unknown help desk (400 field error), nothing written
    send = api.post("/api/send-message/", {"help_desk": str(desk.uuid), "message": "x"})
    assert send.status_code == 400
    assert "help_desk" in send.json()["error"]["fields"]
    # creating in their organization or opening their client's desk
    assert (
        api.post(
            "/api/clients/",
            {"organization": "acme", "name": "x", "phone": "79990000000"},
            format="json",
        ).status_code
        == 404
    )
    assert api.post(
        "/api/help-desks/", {"client": str(client.uuid)}, format="json"
    ).status_code == (404)
    assert (
        api.post(
            "/api/inbound-message/",
            {"organization": "acme", "phone": "79990000000", "message": "x"},
            format="json",
        ).status_code
        == 404
    )

    # unfiltered lists show only their own organization's objects
    assert api.get("/api/help-desks/").json() == []
    assert api.get("/api/clients/").json() == []
    assert [o["slug"] for o in api.get("/api/organizations/").json()] == ["other"]
    # and nothing changed
    desk.refresh_from_db()
    client.refresh_from_db()
    message.refresh_from_db()
    assert (desk.status, client.name, message.status) == ("open", client.name, "sending")
    assert Message.objects.count() == 1
    assert HelpDesk.objects.filter(organization__slug="acme").count() == 1
    assert Client.objects.filter(organization__slug="acme").count() == 1


def test_integration_key_is_scoped_to_its_organization(acme_data, make_org, make_client):
    from chat.services import help_desk_open
    from core.services import api_key_create

    other = make_org("other")
    their_desk, _ = help_desk_open(client=make_client(other))
    # every scope these calls need: what is checked here is the organization, not the scope
    # (a default integration key cannot read at all: tests/core/test_scopes.py)
    _, raw = api_key_create(name="bot", organization=other, scopes=["read", "inbound", "agent"])
    api = _bearer(raw)

    desk = acme_data["help_desk"]
    assert api.get(f"/api/help-desks/{desk.uuid}/").status_code == 404
    assert api.get("/api/help-desks/?organization=acme").status_code == 404
    assert [d["uuid"] for d in api.get("/api/help-desks/").json()] == [str(their_desk.uuid)]
    assert api.get(f"/api/help-desks/{their_desk.uuid}/history/").status_code == 200
    # inbound through an integration key lands in its organization, whatever the body says
    response = api.post(
        "/api/inbound-message/",
        {"organization": "acme", "phone": "79161112233", "message": "hi"},
        format="json",
    )
    assert response.status_code == 201
    assert HelpDesk.objects.get(uuid=response.json()["help_desk"]).organization == other
    # integration keys do not send as agents
    send = api.post("/api/send-message/", {"help_desk": str(their_desk.uuid), "message": "x"})
    assert send.status_code == 403
    assert [o["slug"] for o in api.get("/api/organizations/").json()] == ["other"]


def test_revoked_key_is_401(agent, help_desk):
    api = agent.client()
    assert api.get("/api/help-desks/").status_code == 200

    ApiKey.objects.filter(user=agent.user).update(revoked_at=timezone.now())

    response = api.get("/api/help-desks/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_unknown_and_malformed_keys_are_401(help_desk):
    for header in ("Bearer nope", "Bearer a b", "Token " + "x" * 500, "Bearer \xff"):
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=header)
        assert api.get("/api/help-desks/").status_code == 401, header


def test_inactive_user_key_is_401(agent):
    agent.user.is_active = False
    agent.user.save()
    assert agent.client().get("/api/help-desks/").status_code == 401


def test_token_keyword_also_works(agent):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {agent.key}")
    assert api.get("/api/help-desks/").status_code == 200


def test_api_keys_are_stored_hashed(agent, org):
    from django.db import connection

    from core.services import api_key_create

    _, integration_raw = api_key_create(name="bot", organization=org)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM core_apikey")
        rows = cursor.fetchall()
    dump = repr(rows)
    for raw in (agent.key, integration_raw):
        secret = raw.split(".", 1)[1]
        assert secret not in dump
        assert raw not in dump
    assert ApiKey.objects.count() == 2
    assert all(len(k.key_hash) == 64 for k in ApiKey.objects.all())


def test_last_used_at_is_written_at_most_once_a_minute(agent, time_machine):
    time_machine.move_to("2026-01-01 10:00:00+00:00", tick=False)
    api = agent.client()
    api.get("/api/organizations/")
    first = ApiKey.objects.get(user=agent.user).last_used_at
    assert first is not None

    time_machine.move_to("2026-01-01 10:00:30+00:00", tick=False)
    api.get("/api/organizations/")
    assert ApiKey.objects.get(user=agent.user).last_used_at == first

    time_machine.move_to("2026-01-01 10:01:31+00:00", tick=False)
    api.get("/api/organizations/")
    assert ApiKey.objects.get(user=agent.user).last_used_at > first


def test_session_login_works_for_the_api(agent, client):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(pk=agent.user.pk)
    client.force_login(user)
    assert client.get("/api/help-desks/").status_code == 200
