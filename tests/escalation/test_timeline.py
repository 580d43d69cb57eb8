"""The seed's timeline (action 0001), time-based levels, fencing, acknowledge, resolve."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from core.events import log_key
from escalation.evaluate import triggers_evaluate
from escalation.incidents import incident_check
from escalation.jobs import escalation_sweep
from escalation.models import Incident, IncidentStep, TriggerBatch
from tests.escalation.conftest import SEED

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def post(monitoring: Any, org: Any, payload: dict[str, Any] = SEED, times: int = 1) -> None:
    for _ in range(times):
        response = monitoring.post("/api/triggers/", payload, format="json")
        assert response.status_code == 202, response.content
    triggers_evaluate(organization_id=org.pk)


def steps(incident: Incident) -> list[tuple[str, int, str]]:
    return list(incident.steps.order_by("id").values_list("kind", "level", "reason"))


def check(incident: Incident) -> Incident:
    incident.refresh_from_db()
    result = incident_check(incident_id=incident.pk, token=incident.active_job_id or None)
    assert result is not None
    result.refresh_from_db()
    return result


def test_seed_timeline_warns_once_at_5_level_1_at_10_level_2_at_20_level_3_by_time(
    org, rule, monitoring
):
    from mailing.models import Mailing

    with time_machine.travel(T0, tick=False) as clock:
        post(monitoring, org, times=4)
        incident = Incident.objects.get()
        assert (incident.occurrences, incident.level, steps(incident)) == (4, 0, [])

        post(monitoring, org)  # 5th: warn the clients, once
        incident.refresh_from_db()
        assert steps(incident) == [("warning", 0, "occurrences")]
        warning = incident.steps.get(kind="warning")
        assert warning.error == ""
        mailing = Mailing.objects.get(pk=warning.mailing_id)
        assert sorted(mailing.tags) == ["regular", "vip"]
        assert mailing.text == rule.warn_message
        # named for people (issue 13): the rule's name and the incident's time, no uuid
        assert mailing.name == f"{rule.name or rule.code} warning, {T0:%Y-%m-%d %H:%M} UTC"
        from escalation.representations import IncidentSerializer

        assert IncidentSerializer(incident).data["rule_name"] == (rule.name or rule.code)

        post(monitoring, org, times=4)  # 6..9: nothing new
        assert steps(incident) == [("warning", 0, "occurrences")]
        post(monitoring, org)  # 10th: level 1
        incident.refresh_from_db()
        assert incident.level == 1 and steps(incident)[-1] == ("level", 1, "occurrences")
        post(monitoring, org, times=10)  # 20th: level 2
        incident.refresh_from_db()
        assert incident.level == 2 and steps(incident)[-1] == ("level", 2, "occurrences")
        post(monitoring, org, times=15)  # later triggers repeat nothing
        incident.refresh_from_db()
        assert incident.occurrences == 35 and len(steps(incident)) == 3
        assert Mailing.objects.count() == 1

        # level 3 has no occurrence threshold: time alone (60 min), no trigger needed
        assert incident.next_check_at == T0 + timedelta(minutes=60)
        clock.move_to(T0 + timedelta(minutes=59))
        assert check(incident).level == 2
        clock.move_to(T0 + timedelta(minutes=60))
        incident = check(incident)
        assert incident.level == 3 and steps(incident)[-1] == ("level", 3, "duration")
        assert incident.next_check_at is None and incident.active_job_id == ""
        assert Incident.objects.count() == 1


def test_time_alone_reaches_every_level(org, rule, monitoring):
    with time_machine.travel(T0, tick=False) as clock:
        post(monitoring, org)
        incident = Incident.objects.get()
        assert incident.next_check_at == T0 + timedelta(minutes=5)
        for minutes, level in ((5, 1), (20, 2), (60, 3)):
            clock.move_to(T0 + timedelta(minutes=minutes))
            incident = check(incident)
            assert incident.level == level
        assert [s[2] for s in steps(incident)] == ["duration"] * 3  # no warning: 1 occurrence


def test_elapsed_time_counts_whole_days(org, rule, monitoring):
    # timedelta.seconds of 1 day + 1 minute is 60: the seed's bug would not escalate
    with time_machine.travel(T0, tick=False) as clock:
        post(monitoring, org)
        clock.move_to(T0 + timedelta(days=1, minutes=1))
        incident = check(Incident.objects.get())
        assert incident.level == 3


def test_stale_check_job_does_nothing(org, rule, monitoring):
    with time_machine.travel(T0, tick=False) as clock:
        post(monitoring, org)
        incident = Incident.objects.get()
        old_token = incident.active_job_id
        clock.move_to(T0 + timedelta(minutes=5))
        assert incident_check(incident_id=incident.pk, token="not-the-token") is not None
        incident.refresh_from_db()
        assert incident.level == 0
        incident = check(incident)  # the right token: fires, and reschedules
        assert incident.level == 1 and incident.active_job_id != old_token
        incident_check(incident_id=incident.pk, token=old_token)
        assert IncidentStep.objects.filter(kind="level").count() == 1


def test_sweeper_fires_a_level_whose_job_was_lost(org, rule, monitoring):
    with time_machine.travel(T0, tick=False) as clock:
        post(monitoring, org)
        clock.move_to(T0 + timedelta(minutes=21))
        escalation_sweep()
        incident = Incident.objects.get()
        assert incident.level == 2
        escalation_sweep()
        assert IncidentStep.objects.filter(kind="level").count() == 2


def test_acknowledge_stops_escalation_but_counts(org, rule, monitoring, agent):
    with time_machine.travel(T0, tick=False) as clock:
        post(monitoring, org)
        incident = Incident.objects.get()
        token = incident.active_job_id
        url = f"/api/incidents/{incident.uuid}/acknowledge/"
        assert monitoring.post(url).status_code == 403  # agents acknowledge
        response = agent.client().post(url)
        assert response.status_code == 200, response.content
        assert response.json()["acknowledged_by"] == agent.user.username
        assert agent.client().post(url).status_code == 409
        clock.move_to(T0 + timedelta(minutes=90))
        incident_check(incident_id=incident.pk, token=token)
        escalation_sweep()
        post(monitoring, org, times=25)
        incident.refresh_from_db()
        assert incident.status == "acknowledged" and incident.level == 0
        assert incident.occurrences == 26
        assert steps(incident) == [("warning", 0, "occurrences")]  # customers still warned


def test_resolve_then_a_trigger_opens_a_new_incident(org, rule, monitoring, agent):
    post(monitoring, org, times=3)
    first = Incident.objects.get()
    response = agent.client().post(f"/api/incidents/{first.uuid}/resolve/")
    assert response.status_code == 200 and response.json()["status"] == "resolved"
    assert agent.client().post(f"/api/incidents/{first.uuid}/resolve/").status_code == 409
    post(monitoring, org)
    second = Incident.objects.exclude(pk=first.pk).get()
    first.refresh_from_db()
    assert (first.status, first.occurrences) == ("resolved", 3)
    assert (second.status, second.occurrences) == ("open", 1)


def test_incident_keeps_its_rule_snapshot(org, rule, monitoring, agent):
    post(monitoring, org)
    rule.levels.filter(level=1).update(after_occurrences=2)
    post(monitoring, org)
    incident = Incident.objects.get()
    assert incident.level == 0  # the frozen rule says 10
    assert incident.rule_snapshot["levels"][0]["after_occurrences"] == 10


def test_events_are_published_after_commit(
    org, rule, monitoring, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        monitoring.post("/api/triggers/", SEED, format="json")
    assert len(callbacks) == 1  # the evaluation kick, nothing else
    with django_capture_on_commit_callbacks() as callbacks:
        triggers_evaluate(organization_id=org.pk)
    # incident_opened + the scheduled level check
    assert len(callbacks) == 2
    assert TriggerBatch.objects.filter(evaluated_at__isnull=True).count() == 0


def test_incident_list_and_detail(org, rule, monitoring, agent, make_agent, make_org):
    post(monitoring, org, times=5)
    listing = agent.client().get("/api/incidents/?status=open")
    assert listing.status_code == 200 and len(listing.json()) == 1
    detail = agent.client().get(f"/api/incidents/{listing.json()[0]['id']}/")
    assert [s["kind"] for s in detail.json()["steps"]] == ["warning"]
    outsider = make_agent("eve", make_org("other"))
    assert outsider.client().get(f"/api/incidents/{listing.json()[0]['id']}/").status_code == 404
    assert agent.client().get("/api/incidents/?status=nope").status_code == 400


def _logged_events(redis_client: Any, organization_id: int) -> list[dict[str, Any]]:
    import json

    import msgpack

    frames = []
    for _, fields in redis_client.xrange(log_key(organization_id)):
        frame = json.loads(fields[b"f"])
        payload = json.loads(frame["data"])
        assert msgpack.unpackb(msgpack.packb(payload)) == payload  # channels-safe
        frames.append({"type": frame["type"], "data": payload})
    return frames


def test_every_transition_is_an_event_after_commit(
    org, rule, monitoring, agent, redis_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        monitoring.post("/api/triggers/", SEED, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(10):
            monitoring.post("/api/triggers/", SEED, format="json")
        triggers_evaluate(organization_id=org.pk)
    incident = Incident.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        agent.client().post(f"/api/incidents/{incident.uuid}/acknowledge/")
    with django_capture_on_commit_callbacks(execute=True):
        agent.client().post(f"/api/incidents/{incident.uuid}/resolve/")

    events = [
        e for e in _logged_events(redis_client, org.pk) if e["data"].get("id") == str(incident.uuid)
    ]
    assert [e["type"] for e in events] == [
        "incident_opened",
        "incident_escalated",
        "incident_acknowledged",
        "incident_resolved",
    ]
    # the opening frame counts the occurrences that opened it (it used to say 0)
    assert events[0]["data"]["occurrences"] == 11
    assert events[0]["data"]["level"] == 0
    assert events[1]["data"]["escalation"]["level"] == 1
    assert events[1]["data"]["escalation"]["team"] == "n1"
    assert events[3]["data"]["resolved_by"] == agent.user.username
