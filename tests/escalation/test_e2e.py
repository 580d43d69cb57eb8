"""Escalation through real processes: daphne, RQ workers (with scheduler), websocket."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from escalation.models import Incident, IncidentNotification, IncidentStep, TriggerBatch
from escalation.rules import rule_save
from tests.conftest import wait_until
from tests.escalation.conftest import SEED
from tests.wsclient import WS, data


def _worker_ready() -> bool:
    from rq import Worker

    from core.redis import get_redis

    return bool(Worker.all(connection=get_redis()))


def _evaluated() -> bool:
    return not TriggerBatch.objects.filter(evaluated_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_posts_make_one_incident_and_fire_each_step_once(
    start_web, start_worker, rule, agent, monitoring_key
):
    agent.user.email = "alice@example.com"
    agent.user.save()
    web = start_web()
    start_worker()
    start_worker()  # two evaluators may race for the same organization
    ws = WS(f"{web.ws_url}/ws/chat/{agent.organization.slug}/?token={agent.key}")
    assert ws.recv()["type"] == "hello"
    posts = 40

    def post(_: int) -> int:
        return httpx.post(
            f"{web.url}/api/triggers/",
            json=SEED,
            headers={"Authorization": f"Bearer {monitoring_key}"},
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(post, range(posts)))
    assert codes == [202] * posts

    wait_until(_evaluated, timeout=30)
    incident = Incident.objects.get()  # exactly one
    assert incident.occurrences == posts
    assert incident.level == 2
    kinds = list(IncidentStep.objects.order_by("id").values_list("kind", "level"))
    assert sorted(kinds) == [("level", 1), ("level", 2), ("warning", 0)]

    opened = ws.recv_until(lambda f: f["type"] == "incident_opened", timeout=15)
    assert data(opened)["id"] == str(incident.uuid)
    level2 = ws.recv_until(
        lambda f: f["type"] == "incident_escalated" and data(f)["escalation"]["level"] == 2
    )
    assert data(level2)["escalation"]["team"] == "n2"
    assert data(level2)["escalation"]["members"] == [agent.user.username]
    assert data(level2)["escalation"]["notified"] == [agent.user.username]
    # each level's team was emailed by a worker, once per member and level
    wait_until(lambda: IncidentNotification.objects.filter(status="sent").count() == 2, timeout=30)
    notes = IncidentNotification.objects.order_by("step__level")
    assert [(n.step.level, n.address, n.attempts) for n in notes] == [
        (1, "alice@example.com", 1),
        (2, "alice@example.com", 1),
    ]
    seen = [f for f in ws.frames if f["type"] in ("incident_opened", "incident_escalated")]
    assert len([f for f in seen if f["type"] == "incident_opened"]) == 1
    levels = [data(f)["escalation"]["level"] for f in seen if f["type"] == "incident_escalated"]
    assert levels == [1, 2]


@pytest.mark.django_db(transaction=True)
def test_level_due_while_the_worker_was_down_fires_when_it_is_back(
    start_web, start_worker, org, agent, monitoring_key
):
    # given a rule whose level 1 is due 9 seconds after the incident opens
    rule_save(
        organization=org,
        code="fast",
        triggers=[{"service": "api", "status": 500}],
        levels=[{"level": 1, "after_minutes": 0.15}],
    )
    web = start_web()
    worker = start_worker()
    wait_until(_worker_ready, timeout=30)
    response = httpx.post(
        f"{web.url}/api/triggers/",
        json={"triggers": [{"service": "api", "status": 500}]},
        headers={"Authorization": f"Bearer {monitoring_key}"},
    )
    assert response.status_code == 202
    incident = wait_until(lambda: Incident.objects.filter(occurrences=1).first(), timeout=20)
    assert incident.level == 0 and incident.next_check_at is not None

    # when the worker stops before the level is due, and comes back after
    worker.stop()
    due = incident.next_check_at + timedelta(seconds=1)
    wait_until(lambda: timezone.now() > due, timeout=20)
    incident.refresh_from_db()
    assert incident.level == 0  # nobody was there to fire it
    start_worker()

    # then the scheduled check fires it, once, with no new trigger
    wait_until(lambda: Incident.objects.get(pk=incident.pk).level == 1, timeout=20)
    step = IncidentStep.objects.get(incident=incident)
    assert step.reason == "duration" and step.elapsed_seconds >= 9
