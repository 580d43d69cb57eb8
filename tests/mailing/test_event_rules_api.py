"""PATCH /api/event-rules/<id>/ (and GET one): admin-only like create, tenant-scoped,
validated as a whole with field errors; what an attacker gets."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def rule(org: Any, agent: Any) -> dict[str, Any]:
    from mailing.services import template_create

    template = template_create(organization=org, title="Welcome", code="welcome", body="Hi")
    response = agent.client().post(
        "/api/event-rules/",
        {
            "organization": "acme",
            "event": "user_registered",
            "template": template.pk,
            "delay_seconds": 3600,
            "cancel_events": ["profile_completed"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def test_an_admin_changes_a_rule_and_gets_it_back(org: Any, agent: Any, rule: Any) -> None:
    from mailing.models import EventRule
    from mailing.services import template_create

    reminder = template_create(organization=org, title="Reminder", code="reminder", body="Hey")
    url = f"/api/event-rules/{rule['id']}/"
    response = agent.client().patch(
        url,
        {
            "template": reminder.pk,
            "delay_seconds": 7200,
            "priority": 8,
            "cancel_events": ["b", "a", "a"],
            "active": False,
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["template"], body["delay_seconds"], body["priority"]) == (reminder.pk, 7200, 8)
    assert body["cancel_events"] == ["a", "b"] and body["active"] is False
    assert body["event"] == "user_registered"  # untouched
    saved = EventRule.objects.get(pk=rule["id"])
    assert (saved.template_id, saved.active) == (reminder.pk, False)
    assert agent.client().get(url).json() == body


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"delay_seconds": 0}, "cancel_events"),  # a cancellable rule must stay delayed
        ({"delay_seconds": -1}, "delay_seconds"),
        ({"delay_seconds": 10**9}, "delay_seconds"),
        ({"priority": 11}, "priority"),
        ({"event": "has space"}, "event"),
        ({"transports": ["fax"]}, "transports"),
        ({"cancel_events": "profile_completed"}, "cancel_events"),
        ({"template": "x"}, "template"),
        ({"template": 999999}, "template"),
        ({"active": "maybe"}, "active"),
    ],
)
def test_bad_changes_are_400_with_field_errors_and_change_nothing(
    agent: Any, rule: Any, patch: dict[str, Any], field: str
) -> None:
    from mailing.models import EventRule

    before = EventRule.objects.values().get(pk=rule["id"])
    response = agent.client().patch(f"/api/event-rules/{rule['id']}/", patch, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert EventRule.objects.values().get(pk=rule["id"]) == before


def test_attackers_cannot_read_or_change_a_rule(
    org: Any, make_org: Any, make_agent: Any, rule: Any
) -> None:
    from core.services import api_key_create
    from mailing.models import EventRule
    from mailing.services import template_create

    url = f"/api/event-rules/{rule['id']}/"
    change = {"delay_seconds": 60}
    before = EventRule.objects.values().get(pk=rule["id"])
    # anonymous
    assert APIClient().get(url).status_code == 401
    assert APIClient().patch(url, change, format="json").status_code == 401
    # an agent of another organization (even its admin): not found
    other = make_org("other")
    stranger = make_agent("eve", other)
    assert stranger.client().get(url).status_code == 404
    assert stranger.client().patch(url, change, format="json").status_code == 404
    # another tenant's template put into our rule: a field error
    foreign = template_create(organization=other, title="t", code="t", body="hi")
    admin = make_agent("root", org)
    moved = admin.client().patch(url, {"template": foreign.pk}, format="json")
    assert moved.status_code == 400 and "template" in moved.json()["error"]["fields"]
    # a member who is not an admin reads it but cannot change it
    member = make_agent("bob", org, role="agent")
    assert member.client().get(url).status_code == 200
    assert member.client().patch(url, change, format="json").status_code == 403
    # a leaked integration key of the organization, even with the events scope
    for scopes in (["events"], ["events", "read"]):
        _, raw = api_key_create(name=f"shop-{len(scopes)}", organization=org, scopes=scopes)
        shop = APIClient()
        shop.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert shop.patch(url, change, format="json").status_code == 403
        assert shop.delete(url).status_code == 403
    # a hostile body
    hostile = admin.client().patch(url, "[1, 2", content_type="application/json")
    assert hostile.status_code == 400
    assert EventRule.objects.values().get(pk=rule["id"]) == before


def test_an_event_is_published_to_the_console_processed_then_duplicate(
    org: Any,
    make_client: Any,
    rule: Any,
    redis_client: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    import json

    from chat.models import Client
    from core.events import log_key
    from mailing.services.events import event_receive

    client = make_client(org)
    Client.objects.filter(pk=client.pk).update(email="new@example.test")
    redis_client.delete(log_key(org.pk))
    for _ in range(2):  # the same idempotency key twice
        with django_capture_on_commit_callbacks(execute=True):
            event_receive(
                organization=org,
                name="user_registered",
                client="new@example.test",
                data={},
                idempotency_key="reg-1",
            )
    frames = [json.loads(f[b"f"]) for _, f in redis_client.xrange(log_key(org.pk))]
    received = [json.loads(f["data"]) for f in frames if f["type"] == "event_received"]
    assert [r["status"] for r in received] == ["processed", "duplicate"]
    first = received[0]
    assert first["event"] == "user_registered" and first["client"] == str(client.uuid)
    assert [m["rule"] for m in first["mailings"]] == [rule["id"]]
    assert first["mailings"][0]["status"] == "scheduled"
    assert received[1]["id"] == first["id"]
