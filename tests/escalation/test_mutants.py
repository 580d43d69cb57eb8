"""Incident open / escalate / resolve at the service level: one incident per rule, each
step fired once, the right row acted on.

Each test pins a condition of escalation/incidents.py that a small slip (found by
planting bugs with contrib/mutation.py, see docs/testing.md) would break without any
other test noticing: a second incident, a count on a resolved or another rule's
incident, a level fired twice or never, a check acting on the wrong row.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import transaction

from core.auth import IntegrationPrincipal
from core.models import Team
from core.services import agent_create, api_key_create
from escalation import incidents
from escalation.incidents import (
    incident_acknowledge,
    incident_check,
    incident_record_occurrences,
    incident_resolve,
    incidents_active_locked,
)
from escalation.models import Incident, IncidentStep, Rule
from escalation.rules import rule_save

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _rule(org: Any, code: str, levels: list[dict[str, Any]] | None = None, **kw: Any) -> Rule:
    return rule_save(
        organization=org,
        code=code,
        triggers=[{"service": code, "status": 500}],
        levels=levels or [{"level": 1, "after_occurrences": 100}],
        **kw,
    )


def _record(rule: Rule, count: int = 1, at: datetime = T0) -> Incident | None:
    with transaction.atomic():
        return incident_record_occurrences(rule_id=rule.pk, count=count, first_at=at, last_at=at)


def _steps(incident: Incident) -> list[tuple[str, int, str]]:
    return list(incident.steps.order_by("id").values_list("kind", "level", "reason"))


def test_occurrences_count_on_their_own_rules_active_incident(org: Any) -> None:
    # given: two rules, each with an active incident
    first, second = _rule(org, "login"), _rule(org, "billing")
    a = _record(first, 2)
    b = _record(second, 3)
    assert a is not None and b is not None and a.pk != b.pk
    # when: more occurrences of the second rule
    again = _record(second, 4)
    # then: they go to the second rule's incident, the first one is untouched
    assert again is not None and again.pk == b.pk
    assert dict(Incident.objects.values_list("rule_id", "occurrences")) == {
        first.pk: 2,
        second.pk: 7,
    }


def test_a_resolved_incident_is_never_counted_again(org: Any) -> None:
    rule = _rule(org, "login")
    old = _record(rule, 5)
    assert old is not None
    incident_resolve(incident=old)
    new = _record(rule, 1)
    assert new is not None and new.pk != old.pk
    old.refresh_from_db()
    assert (old.status, old.occurrences) == ("resolved", 5)
    assert (new.status, new.occurrences) == ("open", 1)
    # the batch lookup the evaluator uses sees only the active one
    with transaction.atomic():
        assert {k: v.pk for k, v in incidents_active_locked(rule_ids=[rule.pk]).items()} == {
            rule.pk: new.pk
        }


def test_active_incidents_are_looked_up_for_the_rules_asked_only(org: Any) -> None:
    first, second = _rule(org, "login"), _rule(org, "billing")
    _record(first)
    b = _record(second)
    assert b is not None
    with transaction.atomic():
        found = incidents_active_locked(rule_ids=[second.pk])
    assert {k: v.pk for k, v in found.items()} == {second.pk: b.pk}


def test_an_inactive_or_deleted_rule_opens_nothing(org: Any) -> None:
    rule = _rule(org, "login", is_active=False)
    assert _record(rule) is None
    with transaction.atomic():
        assert (
            incident_record_occurrences(rule_id=rule.pk + 1000, count=1, first_at=T0, last_at=T0)
            is None
        )
    assert not Incident.objects.exists()


def test_the_loser_of_the_opening_race_finds_the_winner_among_other_incidents(
    org: Any, monkeypatch: Any
) -> None:
    # given: another rule's active incident, and this rule's resolved one
    other, rule = _rule(org, "billing"), _rule(org, "login")
    _record(other)
    old = _record(rule)
    assert old is not None
    incident_resolve(incident=old)
    winner: list[Incident] = []

    class RuleInTheWindow:
        class objects:  # another evaluator opens the incident between our read and insert
            @staticmethod
            def select_related(*fields: str) -> Any:
                if not winner:
                    winner.append(
                        Incident.objects.create(
                            organization=org,
                            rule=rule,
                            rule_snapshot=incidents.rule_snapshot(rule),
                            opened_at=T0,
                            last_occurrence_at=T0,
                            occurrences=3,
                        )
                    )
                return Rule.objects.select_related(*fields)

    monkeypatch.setattr(incidents, "Rule", RuleInTheWindow)
    # when: this evaluation's insert loses
    result = _record(rule, 2)
    # then: it counts on the winner: not on the resolved one, not on the other rule's
    assert result is not None and result.pk == winner[0].pk
    winner[0].refresh_from_db()
    assert winner[0].occurrences == 5
    assert Incident.objects.filter(rule=rule).count() == 2


def test_each_incident_fires_its_own_levels(org: Any) -> None:
    # two rules reaching level 1: a step already fired by one incident does not stop the other
    first = _rule(org, "login", [{"level": 1, "after_occurrences": 2}])
    second = _rule(org, "billing", [{"level": 1, "after_occurrences": 2}])
    with time_machine.travel(T0, tick=False):
        a, b = _record(first, 2), _record(second, 2)
    assert a is not None and b is not None
    assert _steps(a) == _steps(b) == [("level", 1, "occurrences")]
    assert (a.level, b.level) == (1, 1)


def test_a_level_skipped_over_fires_as_implied_then_the_due_one(org: Any) -> None:
    rule = _rule(
        org,
        "login",
        [{"level": 1, "after_minutes": 60}, {"level": 2, "after_occurrences": 3}],
    )
    with time_machine.travel(T0, tick=False):
        incident = _record(rule, 3)
    assert incident is not None
    assert _steps(incident) == [("level", 1, "implied"), ("level", 2, "occurrences")]
    assert incident.level == 2
    assert incident.next_check_at is None  # nothing left to schedule
    # nothing fires twice on later occurrences
    with time_machine.travel(T0 + timedelta(minutes=61), tick=False):
        _record(rule, 10)
    assert IncidentStep.objects.count() == 2


def test_the_warning_fires_once(org: Any, make_client: Any) -> None:
    make_client(org, tag="vip")
    rule = _rule(org, "login", warn_after=2, warn_tags=["vip"], warn_message="we know")
    with time_machine.travel(T0, tick=False) as clock:
        _record(rule, 1)
        assert not IncidentStep.objects.exists()
        incident = _record(rule, 1)
        clock.move_to(T0 + timedelta(minutes=1))
        _record(rule, 5)
    assert incident is not None
    assert _steps(incident) == [("warning", 0, "occurrences")]
    incident.refresh_from_db()
    assert incident.customers_warned_at == T0  # when they were warned, not the last repeat


def test_a_level_team_of_another_organization_is_never_recorded(org: Any, make_org: Any) -> None:
    other_team = Team.objects.create(organization=make_org("globex"), slug="ops", name="Ops")
    own_team = Team.objects.create(organization=org, slug="ops", name="Ops")
    rule = _rule(org, "login", [{"level": 1, "after_occurrences": 1, "team": "ops"}])
    assert rule.levels.get().team_id == own_team.pk
    # an admin edit points the level at another organization's team (same slug)
    rule.levels.update(team=other_team)
    incident = _record(rule)
    assert incident is not None
    assert incident.steps.get().team_id is None


def test_acknowledge_and_resolve_act_on_the_incident_named(org: Any) -> None:
    first, second = _rule(org, "login"), _rule(org, "billing")
    a, b = _record(first), _record(second)
    assert a is not None and b is not None
    user = agent_create(username="alice", password=None)
    agent_create(username="bob", password=None)  # more than one user: the right one is kept
    incident_acknowledge(incident=b, user=user)
    a.refresh_from_db()
    assert a.status == "open" and Incident.objects.get(pk=b.pk).status == "acknowledged"
    resolved = incident_resolve(incident=b, user=user)
    assert resolved.resolved_by == user
    a.refresh_from_db()
    assert a.status == "open"


def test_resolved_by_an_integration_key_names_no_user(org: Any) -> None:
    incident = _record(_rule(org, "login"))
    assert incident is not None
    key, _ = api_key_create(name="monitoring", organization=org)
    resolved = incident_resolve(
        incident=incident, user=IntegrationPrincipal(organization=org, api_key=key)
    )
    assert resolved.status == "resolved" and resolved.resolved_by is None


def test_a_check_of_a_deleted_incident_does_nothing() -> None:
    assert incident_check(incident_id=987_654, token="x") is None
    assert incident_check(incident_id=987_654, token=None) is None


def test_a_check_with_a_stale_token_fires_nothing_even_when_due(org: Any) -> None:
    rule = _rule(org, "login", [{"level": 1, "after_minutes": 5}])
    with time_machine.travel(T0, tick=False) as clock:
        incident = _record(rule)
        assert incident is not None and incident.active_job_id
        assert incident.next_check_at == T0 + timedelta(minutes=5)
        clock.move_to(T0 + timedelta(minutes=6))
        incident_check(incident_id=incident.pk, token=incident.active_job_id + "-old")
        assert not IncidentStep.objects.exists()
        incident_check(incident_id=incident.pk, token=incident.active_job_id)
        assert _steps(Incident.objects.get()) == [("level", 1, "duration")]


@pytest.mark.parametrize(
    ("fields", "recorded"),
    [
        ({"tags": ["No client has them."]}, "No recipients. {'tags': ['No client has them.']}"),
        (None, "No recipients. "),
    ],
)
def test_a_failed_warning_is_recorded_on_its_step_and_fires_nothing_else(
    org: Any, monkeypatch: Any, fields: Any, recorded: str
) -> None:
    from core.errors import ApplicationError

    def refuse(**kwargs: Any) -> Any:
        raise ApplicationError("No recipients.", fields=fields)

    monkeypatch.setattr("mailing.services.notification_send", refuse)
    rule = _rule(org, "login", warn_after=1, warn_tags=["vip"], warn_message="we know")
    with time_machine.travel(T0, tick=False):
        incident = _record(rule)
    assert incident is not None
    step = incident.steps.get()
    assert (step.kind, step.mailing_id, step.error) == ("warning", None, recorded)


def test_an_early_check_hands_over_to_a_new_job_and_repeats_do_not(org: Any) -> None:
    rule = _rule(org, "login", [{"level": 1, "after_minutes": 5}])
    with time_machine.travel(T0, tick=False) as clock:
        incident = _record(rule)
        assert incident is not None
        first = incident.active_job_id
        # more occurrences: the scheduled check stays the same job
        _record(rule, 2)
        incident.refresh_from_db()
        assert incident.active_job_id == first
        # the check job runs a minute early (a clock skew between hosts): nothing is due,
        # and a new job (new token) carries the check to its time instead of none at all
        clock.move_to(T0 + timedelta(minutes=4))
        incident_check(incident_id=incident.pk, token=first)
        incident.refresh_from_db()
        assert incident.level == 0 and incident.next_check_at == T0 + timedelta(minutes=5)
        assert incident.active_job_id not in ("", first)
