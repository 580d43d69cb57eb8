"""The race to open an incident: two evaluations of one rule open exactly one."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from core.events import log_key
from escalation import incidents
from escalation.incidents import incident_record_occurrences
from escalation.models import Incident, Rule
from escalation.rules import rule_save


def _rule(org: Any) -> Any:
    return rule_save(
        organization=org,
        code="r1",
        triggers=[{"service": "api", "status": 500}],
        levels=[{"level": 1, "after_occurrences": 100}],
    )


@pytest.mark.django_db
def test_the_loser_counts_on_the_winners_incident_and_announces_nothing(
    org, monkeypatch, django_capture_on_commit_callbacks
):
    # given another evaluator that commits the incident between our "none active" read
    # and our insert (driven here: it opens it when we look the rule up, in that window)
    rule = _rule(org)
    winner: list[Incident] = []

    class RuleInTheWindow:
        class objects:  # stands in for Rule.objects
            @staticmethod
            def select_related(*fields: str) -> Any:
                if not winner:
                    now = timezone.now()
                    winner.append(
                        Incident.objects.create(
                            organization=org,
                            rule=rule,
                            rule_snapshot=incidents.rule_snapshot(rule),
                            opened_at=now,
                            last_occurrence_at=now,
                            occurrences=3,
                        )
                    )
                return Rule.objects.select_related(*fields)

    monkeypatch.setattr(incidents, "Rule", RuleInTheWindow)
    now = timezone.now()

    # when this evaluation tries to open it too
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        result = incident_record_occurrences(rule_id=rule.pk, count=2, first_at=now, last_at=now)

    # then the insert lost (IntegrityError), and the occurrences went to the winner's row
    assert result is not None and result.pk == winner[0].pk
    assert Incident.objects.count() == 1
    assert Incident.objects.get().occurrences == 5
    assert callbacks == []  # the winner announces the opening, not the loser


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_evaluations_open_one_incident_on_postgresql(org, monkeypatch, redis_client):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes writers: no two transactions can race here")
    rule = _rule(org)
    real_snapshot = incidents.rule_snapshot
    # both evaluations have seen "no active incident" before either inserts
    barrier = threading.Barrier(2, timeout=20)

    def snapshot_in_step(r: Any) -> dict[str, Any]:
        barrier.wait()
        return real_snapshot(r)

    monkeypatch.setattr(incidents, "rule_snapshot", snapshot_in_step)
    errors: list[BaseException] = []

    def evaluate() -> None:
        try:
            now = timezone.now()
            with transaction.atomic():
                incident_record_occurrences(rule_id=rule.pk, count=1, first_at=now, last_at=now)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    incident = Incident.objects.get()  # exactly one
    assert incident.occurrences == 2
    opened = [
        json.loads(fields[b"f"])
        for _, fields in redis_client.xrange(log_key(org.pk))
        if json.loads(fields[b"f"])["type"] == "incident_opened"
    ]
    assert len(opened) == 1


@pytest.mark.parametrize("lookup", ["own", "batch"])
@pytest.mark.django_db(transaction=True)
def test_concurrent_counts_on_one_incident_are_never_lost_on_postgresql(org, redis_client, lookup):
    """Two evaluators count on the same active incident: the second must wait for the
    first's row lock and add to its count. Without the lock (the mutant that survives
    on SQLite) it reads the old count and overwrites the first's: occurrences lost.
    `own`: incident_record_occurrences looks the incident up itself; `batch`: the
    evaluator's incidents_active_locked hands it over."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes writers: no two transactions can race here")
    from tests.conftest import wait_until

    rule = rule_save(
        organization=org,
        code="r2",
        triggers=[{"service": "api", "status": 500}],
        levels=[{"level": 1, "after_occurrences": 100_000}],
    )
    now = timezone.now()
    with transaction.atomic():
        incident_record_occurrences(rule_id=rule.pk, count=1, first_at=now, last_at=now)
    counted, commit = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def count(n: int) -> None:
        locked = None
        if lookup == "batch":
            locked = incidents.incidents_active_locked(rule_ids=[rule.pk])[rule.pk]
        incident_record_occurrences(
            rule_id=rule.pk, count=n, first_at=now, last_at=now, locked=locked
        )

    def first() -> None:
        try:
            with transaction.atomic():
                count(10)
                counted.set()
                commit.wait(20)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    def second() -> None:
        try:
            with transaction.atomic():
                count(100)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def a_backend_waits_on_a_lock() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            return bool(cursor.fetchone()[0])

    one = threading.Thread(target=first)
    one.start()
    try:
        assert counted.wait(20)
        two = threading.Thread(target=second)
        two.start()
        wait_until(a_backend_waits_on_a_lock, timeout=20)
    finally:
        commit.set()
        one.join(30)
    two.join(30)
    assert errors == []
    assert Incident.objects.get(rule=rule).occurrences == 111
