"""A worker SIGKILLed in the middle of an evaluation loses no trigger and fires no
level twice: a new worker (and the sweeper, as cron runs it) finishes the work."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from rq.registry import StartedJobRegistry

from core.jobs import QUEUE_ESCALATION, get_queue
from core.redis import get_redis
from escalation.jobs import escalation_sweep
from escalation.models import Incident, IncidentStep, TriggerBatch
from escalation.rules import rule_save
from tests.conftest import kill_with_children, wait_until

PAYLOAD = {"triggers": [{"service": "api", "status": 500}]}


def _evaluating() -> bool:
    registry = StartedJobRegistry(QUEUE_ESCALATION, connection=get_redis())
    jobs = [get_queue(QUEUE_ESCALATION).fetch_job(i) for i in registry.get_job_ids()]
    return any(j is not None and j.func_name.endswith("triggers_evaluate") for j in jobs)


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_evaluation_loses_no_trigger_and_fires_each_level_once(
    start_web, start_worker, org, agent, monitoring_key
):
    # given level 1 due 9 s after opening, level 2 at 6 occurrences
    rule_save(
        organization=org,
        code="r1",
        triggers=PAYLOAD["triggers"],
        levels=[
            {"level": 1, "after_minutes": 0.15},
            {"level": 2, "after_occurrences": 6},
        ],
    )
    # nothing left in Redis by earlier tests: a stale job would linger 60 s below, and a
    # stale evaluation flag of the same organization id would swallow the first kick
    get_redis().flushdb()
    web = start_web()
    # an evaluator that stays in its job (lingering for more batches) until killed
    worker = start_worker(ESCALATION_EVALUATOR_IDLE="60", ESCALATION_EVALUATOR_MAX_RUN="120")

    def post() -> None:
        response = httpx.post(
            f"{web.url}/api/triggers/",
            json=PAYLOAD,
            headers={"Authorization": f"Bearer {monitoring_key}"},
            timeout=30,
        )
        assert response.status_code == 202, response.text

    post()
    incident = wait_until(lambda: Incident.objects.filter(occurrences=1).first(), timeout=30)
    wait_until(_evaluating, timeout=10)

    # when the worker is SIGKILLed inside the evaluation job, and triggers keep coming
    kill_with_children(worker)
    for _ in range(5):
        post()
    assert TriggerBatch.objects.filter(evaluated_at__isnull=True).count() == 5
    # ... for longer than level 1's delay and the sweeper's grace for unevaluated batches
    due = max(incident.opened_at + timedelta(seconds=10), timezone.now() + timedelta(seconds=11))
    wait_until(lambda: timezone.now() > due, timeout=30, interval=0.2)
    incident.refresh_from_db()
    assert (incident.level, incident.occurrences) == (0, 1)  # nobody was there

    # then a new worker, with the sweeper run as cron runs it, finishes everything
    start_worker()
    get_queue(QUEUE_ESCALATION).enqueue(escalation_sweep)
    wait_until(
        lambda: not TriggerBatch.objects.filter(evaluated_at__isnull=True).exists(), timeout=40
    )
    wait_until(lambda: Incident.objects.get(pk=incident.pk).level == 2, timeout=30)
    # and a second sweep (cron again) fires nothing more
    job = get_queue(QUEUE_ESCALATION).enqueue(escalation_sweep)
    wait_until(lambda: job.get_status(refresh=True) == "finished", timeout=30)

    incident.refresh_from_db()
    assert Incident.objects.count() == 1
    assert incident.occurrences == 6
    levels = list(
        IncidentStep.objects.filter(incident=incident, kind="level")
        .order_by("level")
        .values_list("level", flat=True)
    )
    assert levels == [1, 2]
