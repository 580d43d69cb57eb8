"""The conversation workflow (issue 13): status, snooze, assignment, inbox views, counts."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from chat import services
from chat.models import HelpDesk
from chat.workflow import help_desks_unsnooze_due
from core.models import Team
from core.services import api_key_create

pytestmark = pytest.mark.django_db


def _patch(api: APIClient, desk: Any, body: dict[str, Any]) -> Any:
    return api.patch(f"/api/help-desks/{desk.uuid}/", body, format="json")


def _events(callbacks: list[Any], event_type: str) -> list[dict[str, Any]]:
    """The payloads `event_type` events would carry, from captured on-commit callbacks."""
    from core import events

    seen: list[dict[str, Any]] = []
    original = events.events_append

    def _capture(*, organization_id: int, events: list[tuple[str, str]]) -> list[int]:
        seen.extend({"type": kind, "data": json.loads(data)} for kind, data in events)
        return [0] * len(events)

    events.events_append = _capture  # type: ignore[assignment]
    try:
        for callback in callbacks:
            callback()
    finally:
        events.events_append = original  # type: ignore[assignment]
    return [e["data"] for e in seen if e["type"] == event_type]


@pytest.fixture
def bob(make_agent: Any, org: Any) -> Any:
    return make_agent("bob", org, role="agent")


@pytest.fixture
def team(org: Any) -> Team:
    return Team.objects.create(organization=org, name="Billing", slug="billing")


def test_status_moves_through_the_workflow_and_publishes_each_change(
    agent, help_desk, django_capture_on_commit_callbacks
):
    api = agent.client()
    for status in ("pending", "resolved", "open"):
        with django_capture_on_commit_callbacks() as callbacks:
            response = _patch(api, help_desk, {"status": status})
        assert response.status_code == 200, response.content
        assert response.json()["status"] == status
        [event] = _events(callbacks, "update_helpdesk")
        # the event payload is the REST object, less the requesting agent's own unread count
        assert event == {**response.json(), "unread_count": None}
    help_desk.refresh_from_db()
    assert help_desk.status == "open"


def test_closed_is_a_deprecated_alias_of_resolved(agent, help_desk):
    response = _patch(agent.client(), help_desk, {"status": "closed"})
    assert response.status_code == 200
    assert response.json()["status"] == "resolved"
    filtered = agent.client().get("/api/help-desks/", {"organization": "acme", "status": "closed"})
    assert [d["uuid"] for d in filtered.json()] == [str(help_desk.uuid)]


def test_snooze_needs_a_future_time_and_reopens_by_itself(agent, help_desk):
    api = agent.client()
    assert _patch(api, help_desk, {"status": "snoozed"}).json()["error"]["fields"]["snoozed_until"]
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    assert _patch(api, help_desk, {"status": "snoozed", "snoozed_until": past}).status_code == 400
    alone = _patch(
        api, help_desk, {"snoozed_until": (timezone.now() + timedelta(hours=1)).isoformat()}
    )
    assert alone.status_code == 400 and "snoozed_until" in alone.json()["error"]["fields"]

    until = timezone.now() + timedelta(hours=1)
    response = _patch(api, help_desk, {"status": "snoozed", "snoozed_until": until.isoformat()})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "snoozed"
    assert response.json()["snoozed_until"] is not None

    # before its time nothing moves; at its time the sweep reopens it
    assert help_desks_unsnooze_due() == 0
    with time_machine.travel(until + timedelta(seconds=1), tick=False):
        assert help_desks_unsnooze_due() == 1
        assert help_desks_unsnooze_due() == 0  # idempotent
    help_desk.refresh_from_db()
    assert (help_desk.status, help_desk.snoozed_until) == ("open", None)


def test_the_cron_reopens_a_snoozed_desk_by_itself_and_tells_every_agent(
    agent, help_desk, redis_client, django_capture_on_commit_callbacks
):
    """Reopening by itself needs more than the sweep: `run_cron` must run it, often
    (docs/console.md promises within 15 s), and the reopening must reach every page."""
    from rq.cron import CronScheduler

    from chat import jobs
    from core.jobs import QUEUE_CHAT

    scheduler = CronScheduler(connection=redis_client)
    scheduler.load_config_from_file("core.cron")  # what run_cron loads
    [job] = [j for j in scheduler.get_jobs() if j.name == "help_desks_unsnooze"]
    assert (job.func_name, job.queue_name) == ("chat.jobs.help_desks_unsnooze", QUEUE_CHAT)
    assert job.interval is not None and job.interval <= 15

    until = timezone.now() + timedelta(minutes=5)
    body = {"status": "snoozed", "snoozed_until": until.isoformat()}
    assert _patch(agent.client(), help_desk, body).status_code == 200
    with (
        time_machine.travel(until + timedelta(seconds=1), tick=False),
        django_capture_on_commit_callbacks() as callbacks,
    ):
        assert jobs.help_desks_unsnooze() == 1  # the cron's job, as the worker runs it
    [event] = _events(callbacks, "update_helpdesk")
    assert (event["uuid"], event["status"], event["snoozed_until"]) == (
        str(help_desk.uuid),
        "open",
        None,
    )


def test_a_client_message_reopens_a_snoozed_or_pending_desk_in_place(agent, help_desk):
    api = agent.client()
    until = (timezone.now() + timedelta(days=1)).isoformat()
    for body in ({"status": "snoozed", "snoozed_until": until}, {"status": "pending"}):
        assert _patch(api, help_desk, body).status_code == 200
        message = services.message_receive(
            organization=agent.organization, phone=help_desk.client.phone, text="hello?"
        )
        assert message.help_desk_id == help_desk.pk  # the same conversation, not a new one
        help_desk.refresh_from_db()
        assert (help_desk.status, help_desk.snoozed_until) == ("open", None)


def test_assign_by_user_id_or_username_and_to_a_team(agent, bob, team, help_desk):
    api = agent.client()
    response = _patch(api, help_desk, {"assignee": bob.user.pk, "team": team.pk})
    assert response.status_code == 200, response.content
    assert response.json()["assignee"] == "bob"
    assert response.json()["team"] == {"id": team.pk, "name": "Billing"}
    assert _patch(api, help_desk, {"assignee": "alice"}).json()["assignee"] == "alice"
    cleared = _patch(api, help_desk, {"assignee": None, "team": None}).json()
    assert (cleared["assignee"], cleared["team"]) == (None, None)


def test_another_tenants_agent_team_and_desk_are_refused(
    agent, make_agent, make_org, make_client, help_desk
):
    other = make_org("globex")
    eve = make_agent("eve", other)
    their_team = Team.objects.create(organization=other, name="Theirs", slug="theirs")
    api = agent.client()

    for body, field in (
        ({"assignee": eve.user.pk}, "assignee"),
        ({"assignee": "eve"}, "assignee"),
        ({"team": their_team.pk}, "team"),
    ):
        response = _patch(api, help_desk, body)
        assert response.status_code == 400, body
        assert field in response.json()["error"]["fields"]
    help_desk.refresh_from_db()
    assert (help_desk.assignee, help_desk.team) == (None, None)

    # eve cannot touch alice's desk, nor see it in her counts
    assert _patch(eve.client(), help_desk, {"status": "resolved"}).status_code == 404
    counts = eve.client().get("/api/help-desks/counts/").json()
    assert counts["all"] == 0
    assert eve.client().get("/api/help-desks/counts/", {"organization": "acme"}).status_code == 404


def test_anonymous_and_a_key_without_the_agent_scope_are_refused(org, agent, help_desk):
    assert _patch(APIClient(), help_desk, {"status": "resolved"}).status_code == 401
    assert APIClient().get("/api/help-desks/counts/").status_code == 401
    _, raw = api_key_create(name="bot", organization=org)  # integration defaults: no agent
    bot = APIClient()
    bot.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = _patch(bot, help_desk, {"status": "resolved"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert bot.get("/api/help-desks/counts/").status_code == 403
    help_desk.refresh_from_db()
    assert help_desk.status == "open"


@pytest.mark.parametrize(
    "body",
    [
        {"status": "archived"},
        {"status": ["open"]},
        {"assignee": True},
        {"assignee": {"id": 1}},
        {"assignee": "x" * 500},
        {"team": "billing"},
        {"team": 0},
        {"team": 10**30},
        {"status": "snoozed", "snoozed_until": "tomorrow"},
        {"status": "snoozed", "snoozed_until": "9999-99-99T00:00:00"},
    ],
)
def test_hostile_bodies_are_400_with_field_errors(agent, help_desk, body):
    response = _patch(agent.client(), help_desk, body)
    assert response.status_code == 400, response.content
    assert set(response.json()["error"]["fields"]) & {"status", "assignee", "team", "snoozed_until"}


def test_an_agents_reply_assigns_an_unassigned_desk_to_them_only(agent, bob, help_desk):
    response = bob.client().post(
        "/api/send-message/", {"help_desk": str(help_desk.uuid), "message": "on it"}
    )
    assert response.status_code == 201, response.content
    help_desk.refresh_from_db()
    assert help_desk.assignee == bob.user
    # a second agent's reply does not take it away
    agent.client().post("/api/send-message/", {"help_desk": str(help_desk.uuid), "message": "+1"})
    help_desk.refresh_from_db()
    assert help_desk.assignee == bob.user


def test_views_filters_and_counts(agent, bob, team, org, make_client):
    desks = [services.help_desk_open(client=make_client(org))[0] for _ in range(5)]
    api = agent.client()
    _patch(api, desks[0], {"assignee": agent.user.pk})
    _patch(api, desks[1], {"assignee": bob.user.pk, "team": team.pk, "status": "pending"})
    _patch(api, desks[2], {"status": "resolved", "assignee": agent.user.pk})
    _patch(api, desks[3], {"team": team.pk})

    def listed(**params: Any) -> set[str]:
        response = api.get("/api/help-desks/", {"organization": "acme", **params})
        assert response.status_code == 200, response.content
        return {d["uuid"] for d in response.json()}

    uuids = [str(d.uuid) for d in desks]
    assert listed(view="mine") == {uuids[0]}
    assert listed(view="unassigned") == {uuids[3], uuids[4]}
    assert listed(view="all") == set(uuids)
    assert listed(status="pending") == {uuids[1]}
    assert listed(team=team.pk) == {uuids[1], uuids[3]}
    assert listed(view="unassigned", team=team.pk) == {uuids[3]}

    counts = api.get("/api/help-desks/counts/", {"organization": "acme"}).json()
    assert counts == {
        "mine": 1,
        "unassigned": 2,
        "all": 4,
        "status": {"open": 3, "pending": 1, "snoozed": 0, "resolved": 1},
        "teams": [{"id": team.pk, "name": "Billing", "count": 2}],
    }
    for bad in ({"view": "everyone"}, {"status": "nope"}, {"team": "x"}):
        response = api.get("/api/help-desks/", {"organization": "acme", **bad})
        assert response.status_code == 400
        assert set(bad) <= set(response.json()["error"]["fields"])


def test_list_queries_do_not_grow_with_the_page(agent, org, make_client, team):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api = agent.client()
    api.get("/api/help-desks/", {"organization": "acme"})  # warm: the key's lookup is cached
    for _ in range(3):
        desk, _ = services.help_desk_open(client=make_client(org))
        HelpDesk.objects.filter(pk=desk.pk).update(team=team)
    with CaptureQueriesContext(connection) as few:
        api.get("/api/help-desks/", {"organization": "acme", "view": "all"})
    for _ in range(10):
        desk, _ = services.help_desk_open(client=make_client(org))
        HelpDesk.objects.filter(pk=desk.pk).update(team=team)
    with CaptureQueriesContext(connection) as many:
        api.get("/api/help-desks/", {"organization": "acme", "view": "all"})
    assert len(many) == len(few)
