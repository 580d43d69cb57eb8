"""The customer context sidebar (issue 13): conversations, mailings, incident warnings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from chat import services
from core.models import Delivery
from core.services import api_key_create
from escalation.models import Incident, IncidentStep
from mailing.models import Mailing, MailingMessage

pytestmark = pytest.mark.django_db


def _mailing(org: Any, client: Any, name: str, status: str = "sent") -> Mailing:
    now = timezone.now()
    mailing = Mailing.objects.create(
        organization=org, name=name, start_at=now, end_at=now + timedelta(hours=1), text="x"
    )
    delivery = Delivery.objects.create(
        organization=org, source="mailing", phone=int(client.phone or 0), text="x", status=status
    )
    MailingMessage.objects.create(delivery=delivery, mailing=mailing, client=client)
    return mailing


def _incident(org: Any, mailing: Mailing | None, status: str = "open") -> Incident:
    now = timezone.now()
    incident = Incident.objects.create(
        organization=org,
        rule_snapshot={"code": "db-down", "name": "Database down"},
        status=status,
        opened_at=now,
        last_occurrence_at=now,
    )
    IncidentStep.objects.create(
        incident=incident,
        kind="warning",
        reason="occurrences",
        occurrences=3,
        elapsed_seconds=1.0,
        mailing_id=mailing.pk if mailing else None,
        fired_at=now,
    )
    return incident


def test_context_gathers_conversations_mailings_and_open_incident_warnings(agent, org, make_client):
    client = make_client(org, name="Ann")
    other = make_client(org, name="Bob")
    old, _ = services.help_desk_open(client=client)
    services.message_receive(organization=org, phone=client.phone, text="first question")
    agent.client().patch(f"/api/help-desks/{old.uuid}/", {"status": "resolved"}, format="json")
    services.message_receive(organization=org, phone=client.phone, text="second question")
    services.message_receive(organization=org, phone=other.phone, text="not Ann's")
    spring = _mailing(org, client, "Spring sale")
    _mailing(org, other, "Not for Ann")
    warned = _incident(org, spring)
    _incident(org, spring, status="resolved")  # closed: not shown
    _incident(org, _mailing(org, other, "Bob's warning"))  # warned someone else

    response = agent.client().get(f"/api/clients/{client.uuid}/context/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["client"]["uuid"] == str(client.uuid)
    assert {"email", "language", "channel", "email_promo_opt_out"} <= set(body["client"])
    assert [d["last_message_text"] for d in body["help_desks"]] == [
        "second question",
        "first question",
    ]
    assert [d["status"] for d in body["help_desks"]] == ["open", "resolved"]
    assert [(m["name"], m["message_status"]) for m in body["mailings"]] == [("Spring sale", "sent")]
    assert [(i["uuid"], i["rule_name"], i["status"]) for i in body["incidents"]] == [
        (str(warned.uuid), "Database down", "open")
    ]


def test_client_contact_fields_are_editable_and_validated(agent, org, make_client):
    client = make_client(org)
    api = agent.client()
    url = f"/api/clients/{client.uuid}/"
    # what the sidebar edits: name, tag, time zone, email, language and both opt-outs
    edits = {
        "name": "Ann Lee",
        "tag": "vip",
        "timezone": "America/Sao_Paulo",
        "email": "ann@example.com",
        "language": "pt-br",
        "promo_opt_out": True,
        "email_promo_opt_out": True,
    }
    response = api.patch(url, edits, format="json")
    assert response.status_code == 200, response.content
    assert {k: response.json()[k] for k in edits} == edits
    client.refresh_from_db()
    assert {k: getattr(client, k) for k in edits} == edits
    for bad in (
        {"email": "not an email"},
        {"language": "klingon"},
        {"email": ["a@b.c"]},
        {"timezone": "Mars/Olympus_Mons"},
        {"tag": "has space"},
        {"name": ""},
    ):
        refused = api.patch(url, bad, format="json")
        assert refused.status_code == 400
        assert set(bad) <= set(refused.json()["error"]["fields"])


def test_attackers_get_nothing(agent, org, make_agent, make_org, make_client):
    client = make_client(org)
    url = f"/api/clients/{client.uuid}/context/"
    eve = make_agent("eve", make_org("globex"))
    assert eve.client().get(url).status_code == 404
    assert APIClient().get(url).status_code == 401
    _, raw = api_key_create(name="bot", organization=org, scopes=["read"])
    bot = APIClient()
    bot.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert bot.get(url).status_code == 403  # agents only, whatever the key's scopes
    assert agent.client().get("/api/clients/not-a-uuid/context/").status_code == 404
