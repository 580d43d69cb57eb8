"""Event-driven notifications: rules, POST /api/events/ processed exactly once, delayed
reminders cancelled by a later event, and what other tenants and hostile bodies get."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

DAYS_3 = 3 * 24 * 3600


def _integration(org: Any, scopes: list[str]) -> APIClient:
    from core.services import api_key_create

    _, raw = api_key_create(name="shop", organization=org, scopes=scopes)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


@pytest.fixture
def rules(org: Any, agent: Any) -> dict[str, int]:
    """A welcome email now and a reminder after 3 days unless the profile is completed."""
    from mailing.services import template_create

    api = agent.client()
    ids = {}
    for code, delay, cancel in (("welcome", 0, []), ("reminder", DAYS_3, ["profile_completed"])):
        template = template_create(
            organization=org,
            title=code,
            code=code,
            transport="email",
            subject=f"{code} {{{{ name }}}}",
            body="Hi {{ name }}, code {{ promo_code }}",
            variables=["promo_code"],
        )
        response = api.post(
            "/api/event-rules/",
            {
                "organization": "acme",
                "event": "user_registered",
                "template": template.pk,
                "transports": ["email", "sms"],
                "delay_seconds": delay,
                "priority": 9 if not delay else 3,
                "cancel_events": cancel,
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        ids[code] = response.json()["id"]
    return ids


def _client(make_client: Any, org: Any, email: str) -> Any:
    from chat.models import Client

    client = make_client(org)
    Client.objects.filter(pk=client.pk).update(email=email)
    client.refresh_from_db()
    return client


def _event(name: str, client: str, key: str, **data: Any) -> dict[str, Any]:
    return {"event": name, "client": client, "data": data, "idempotency_key": key}


def test_an_event_runs_the_rules_once_and_a_later_event_cancels_the_reminder(
    org: Any, make_client: Any, rules: dict[str, int]
) -> None:
    from mailing.models import Mailing

    client = _client(make_client, org, "new@example.test")
    shop = _integration(org, ["events"])
    # when: the shop posts the registration (by email address), twice (a retry)
    body = _event("user_registered", "NEW@example.test", "reg-1", promo_code="W10")
    first = shop.post("/api/events/", body, format="json")
    again = shop.post("/api/events/", body, format="json")
    # then: processed once; the retry gets the same event and nothing new, the repeat
    # counted on it
    assert first.status_code == 201, first.content
    assert first.json()["duplicates"] == 0 and first.json()["last_duplicate_at"] is None
    assert again.status_code == 200
    repeat = {"duplicates", "last_duplicate_at"}
    assert {k: v for k, v in again.json().items() if k not in repeat} == {
        k: v for k, v in first.json().items() if k not in repeat
    }
    assert again.json()["duplicates"] == 1 and again.json()["last_duplicate_at"]
    produced = {m["rule"]: m for m in first.json()["mailings"]}
    assert set(produced) == {rules["welcome"], rules["reminder"]}
    assert Mailing.objects.filter(event__isnull=False).count() == 2
    welcome = Mailing.objects.get(pk=produced[rules["welcome"]]["id"])
    reminder = Mailing.objects.get(pk=produced[rules["reminder"]]["id"])
    assert welcome.start_at <= timezone.now() and welcome.priority == 9
    assert welcome.client_ids == [client.pk] and welcome.context == {"promo_code": "W10"}
    assert welcome.transports == ["email", "sms"]
    delay = (reminder.start_at - welcome.start_at).total_seconds()
    assert abs(delay - DAYS_3) < 5 and reminder.status == "scheduled"
    # when: the profile is completed (by the client's uuid)
    done = shop.post(
        "/api/events/", _event("profile_completed", str(client.uuid), "done-1"), format="json"
    )
    # then: the reminder is cancelled, the welcome is not
    assert done.status_code == 201
    assert done.json()["cancelled"] == [reminder.pk] and done.json()["mailings"] == []
    reminder.refresh_from_db()
    welcome.refresh_from_db()
    assert reminder.status == "cancelled" and welcome.status != "cancelled"
    # the API lists both events with what each produced
    listed = shop_reader(org).get("/api/events/", {"organization": "acme"}).json()
    assert [e["idempotency_key"] for e in listed] == ["done-1", "reg-1"]
    assert listed[1]["client"] == str(client.uuid)


def shop_reader(org: Any) -> APIClient:
    return _integration(org, ["read"])


def test_an_uncancelled_reminder_starts_at_its_time(
    org: Any, make_client: Any, rules: dict[str, int]
) -> None:
    from mailing.models import Mailing, MailingMessage
    from mailing.services import mailing_start

    client = _client(make_client, org, "late@example.test")
    shop = _integration(org, ["events"])
    shop.post(
        "/api/events/",
        _event("user_registered", client.phone, "reg-2", promo_code="R5"),
        format="json",
    )
    reminder = Mailing.objects.get(rule_id=rules["reminder"])
    # before its time, a start does nothing; at its time it goes to the client
    assert mailing_start(mailing_id=reminder.pk) is False
    with time_machine.travel(reminder.start_at + timedelta(seconds=1)):
        mailing_start(mailing_id=reminder.pk)
    message = MailingMessage.objects.select_related("delivery").get(mailing=reminder)
    assert message.transport == "email" and message.address == "late@example.test"
    assert message.delivery.text == f"Hi {client.name}, code R5"


def test_a_reused_key_for_another_event_is_a_conflict(
    org: Any, make_client: Any, rules: dict[str, int]
) -> None:
    client = _client(make_client, org, "a@example.test")
    shop = _integration(org, ["events"])
    ok = shop.post(
        "/api/events/", _event("user_registered", client.email, "k", promo_code="x"), format="json"
    )
    assert ok.status_code == 201
    clash = shop.post("/api/events/", _event("profile_completed", client.email, "k"), format="json")
    assert clash.status_code == 409
    assert "idempotency_key" in clash.json()["error"]["fields"]


def test_data_a_rules_template_needs_is_a_field_error_and_nothing_is_recorded(
    org: Any, make_client: Any, rules: dict[str, int]
) -> None:
    from mailing.models import Event, Mailing

    client = _client(make_client, org, "a@example.test")
    shop = _integration(org, ["events"])
    response = shop.post(
        "/api/events/", _event("user_registered", client.email, "k2"), format="json"
    )
    assert response.status_code == 400
    assert "data" in response.json()["error"]["fields"]
    assert not Event.objects.exists() and not Mailing.objects.exists()


def test_another_tenants_client_key_and_rules(
    org: Any, make_org: Any, make_client: Any, make_agent: Any, rules: dict[str, int]
) -> None:
    from mailing.models import Event, Mailing

    other = make_org("other")
    theirs = _client(make_client, other, "theirs@example.test")
    mine = _client(make_client, org, "mine@example.test")
    their_shop = _integration(other, ["events", "read"])
    # a client of another organization, by uuid, phone or email, is unknown
    for ref in (str(mine.uuid), mine.phone, mine.email):
        response = their_shop.post(
            "/api/events/",
            _event("user_registered", ref, f"x-{ref}", promo_code="1"),
            format="json",
        )
        assert response.status_code == 400, ref
        assert "client" in response.json()["error"]["fields"]
    # their own client: their rules (none), not ours
    response = their_shop.post(
        "/api/events/",
        _event("user_registered", theirs.email, "t-1", promo_code="1"),
        format="json",
    )
    assert response.status_code == 201 and response.json()["mailings"] == []
    assert not Mailing.objects.filter(organization=other).exists()
    # they cannot list ours
    listed = their_shop.get("/api/events/", {"organization": "acme"})
    assert listed.status_code == 404
    assert Event.objects.filter(organization=org).count() == 0
    # the same idempotency key in another organization is another event
    mine_shop = _integration(org, ["events"])
    ours = mine_shop.post(
        "/api/events/", _event("user_registered", mine.email, "t-1", promo_code="1"), format="json"
    )
    assert ours.status_code == 201
    # a rule on another tenant's template; a non-admin member; an unscoped key
    from mailing.services import template_create

    foreign = template_create(organization=other, title="t", code="t", body="hi")
    admin = make_agent("root", org)
    bad = admin.client().post(
        "/api/event-rules/",
        {"organization": "acme", "event": "x", "template": foreign.pk},
        format="json",
    )
    assert bad.status_code == 400 and "template" in bad.json()["error"]["fields"]
    member = make_agent("bob", org, role="agent")
    refused = member.client().post(
        "/api/event-rules/",
        {"organization": "acme", "event": "x", "template": foreign.pk},
        format="json",
    )
    assert refused.status_code == 403
    unscoped = _integration(org, ["inbound"])
    body = _event("user_registered", mine.email, "u-1", promo_code="1")
    assert unscoped.post("/api/events/", body, format="json").status_code == 403
    assert APIClient().post("/api/events/", body, format="json").status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event": "has space", "client": "a@x.test", "idempotency_key": "k"}, "event"),
        ({"event": "e", "idempotency_key": "k"}, "client"),
        ({"event": "e", "client": "a@x.test"}, "idempotency_key"),
        ({"event": "e", "client": "a@x.test", "idempotency_key": "k" * 101}, "idempotency_key"),
        ({"event": "e", "client": "a@x.test", "idempotency_key": "k", "data": []}, "data"),
        (
            {"event": "e", "client": "a@x.test", "idempotency_key": "k", "data": {"a": {"b": 1}}},
            "data",
        ),
        (
            {
                "event": "e",
                "client": "a@x.test",
                "idempotency_key": "k",
                "data": {f"v{i}": i for i in range(51)},
            },
            "data",
        ),
        ({"event": "e", "client": ["a@x.test"], "idempotency_key": "k"}, "client"),
    ],
)
def test_hostile_event_bodies_are_400_with_field_errors(org: Any, body: Any, field: str) -> None:
    response = _integration(org, ["events"]).post("/api/events/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_posts_of_one_event_process_it_once(
    org: Any, make_client: Any, rules: dict[str, int]
) -> None:
    """Two callers race with the same key (PostgreSQL: real concurrent transactions; the
    second INSERT waits for the first's commit, then conflicts)."""
    import threading

    from django.db import connection, connections

    from mailing.models import Event, Mailing
    from mailing.services.events import event_receive

    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions need PostgreSQL")
    client = _client(make_client, org, "race@example.test")
    barrier = threading.Barrier(2)
    created: list[bool] = []

    def post() -> None:
        try:
            barrier.wait(5)
            _, new = event_receive(
                organization=org,
                name="user_registered",
                client=client.email,
                data={"promo_code": "R"},
                idempotency_key="race-1",
            )
            created.append(new)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(created) == [False, True]
    assert Event.objects.filter(idempotency_key="race-1").count() == 1
    assert Mailing.objects.filter(event__idempotency_key="race-1").count() == len(rules)


def test_repeats_of_a_key_are_counted_on_the_event_the_api_shows(
    org: Any, make_client: Any, rules: dict[str, int], staff: Any
) -> None:
    from mailing.models import Mailing

    _client(make_client, org, "twice@example.test")
    shop = _integration(org, ["events"])
    body = _event("user_registered", "twice@example.test", "reg-2", promo_code="W10")
    with time_machine.travel("2026-12-01 10:00:00Z", tick=False):
        assert shop.post("/api/events/", body, format="json").status_code == 201
    # when: the same key twice more (retries), the last at 10:05
    for minute in (1, 5):
        with time_machine.travel(f"2026-12-01 10:0{minute}:00Z", tick=False):
            assert shop.post("/api/events/", body, format="json").status_code == 200
    # then: the events API shows two repeats and when the last came; nothing sent twice
    [listed] = shop_reader(org).get("/api/events/", {"organization": "acme"}).json()
    assert listed["duplicates"] == 2
    assert listed["last_duplicate_at"] == "2026-12-01T10:05:00Z"
    assert Mailing.objects.filter(event__idempotency_key="reg-2").count() == len(rules)
    # and its OpenAPI schema names both fields
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    event = schema["components"]["schemas"]["Event"]["properties"]
    assert event["duplicates"]["type"] == "integer" and event["duplicates"]["readOnly"]
    assert event["last_duplicate_at"]["nullable"] and event["last_duplicate_at"]["readOnly"]
    # the admin's list shows the count
    page = staff.get("/admin/mailing/event/")
    assert page.status_code == 200 and b'class="field-duplicates">2<' in page.content


@pytest.mark.django_db(transaction=True)
def test_concurrent_repeats_of_one_key_are_each_counted(
    org: Any, make_client: Any, rules: dict[str, int]
) -> None:
    """Many callers repeat a processed key at once (PostgreSQL: real concurrent
    transactions): each repeat is counted, none lost to another's write."""
    import threading

    from django.db import connection, connections

    from mailing.models import Mailing
    from mailing.services.events import event_receive

    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions need PostgreSQL")
    client = _client(make_client, org, "repeat@example.test")
    post = {
        "organization": org,
        "name": "user_registered",
        "client": client.email,
        "data": {"promo_code": "R"},
        "idempotency_key": "again-1",
    }
    event, created = event_receive(**post)
    assert created
    threads_count, repeats = 8, 5
    barrier = threading.Barrier(threads_count)
    answers: list[bool] = []
    errors: list[BaseException] = []

    def repeat() -> None:
        try:
            barrier.wait(10)
            for _ in range(repeats):
                answers.append(event_receive(**post)[1])
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=repeat) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert answers == [False] * (threads_count * repeats)
    event.refresh_from_db()
    assert event.duplicates == threads_count * repeats
    assert Mailing.objects.filter(event=event).count() == len(rules)
