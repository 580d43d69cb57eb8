"""Level k notifies team k: one email per member with an address, recorded, once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.utils import timezone

from core.models import Membership, Team, TeamMember
from escalation.incidents import incident_record_occurrences
from escalation.jobs import escalation_sweep, incident_step_notify
from escalation.models import Incident, IncidentNotification, IncidentStep
from escalation.rules import rule_save, team_save
from tests.escalation.test_timeline import _logged_events

pytestmark = pytest.mark.django_db


class FailingBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Any) -> int:
        raise ConnectionRefusedError("smtp down")


@pytest.fixture
def locmem(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []


@pytest.fixture
def agent_ann(org: Any, make_agent: Any) -> Any:
    return make_agent("ann", org)


@pytest.fixture
def oncall(org: Any, agent_ann: Any, make_agent: Any, make_org: Any) -> Team:
    """Team `oncall` of acme: ann (with an email), ben (none), and, slipped in by a
    bad edit, a membership of another organization (must never be told)."""
    ann, _ben = agent_ann, make_agent("ben", org)
    ann.user.email = "ann@example.com"
    ann.user.save()
    team = team_save(organization=org, slug="oncall", members=["ann", "ben"])
    eve = make_agent("eve", make_org("other"))
    eve.user.email = "eve@example.com"
    eve.user.save()
    TeamMember.objects.create(team=team, membership=Membership.objects.get(user=eve.user), order=9)
    return team


def _oncall_rule(org: Any) -> Any:
    """A rule whose level 1 (team oncall) is due at the first occurrence."""
    return rule_save(
        organization=org,
        code="r1",
        triggers=[{"service": "api", "status": 500}],
        levels=[{"level": 1, "after_occurrences": 1, "team": "oncall"}],
    )


def _occur(rule_id: int, count: int = 1) -> Incident:
    now = timezone.now()
    with transaction.atomic():
        incident = incident_record_occurrences(
            rule_id=rule_id, count=count, first_at=now, last_at=now
        )
    assert incident is not None
    return incident


def test_level_emails_each_member_with_an_address_once(
    org, oncall, agent_ann, locmem, redis_client, django_capture_on_commit_callbacks
):
    # given a rule whose level 1 (team oncall) is due at the first occurrence
    rule = _oncall_rule(org)
    # when it fires
    with django_capture_on_commit_callbacks(execute=True):
        incident = _occur(rule.pk)
    step = IncidentStep.objects.get(incident=incident, kind="level")

    # then a notification row per member of the organization, none for eve
    rows = {n.username: n for n in IncidentNotification.objects.filter(step=step)}
    assert set(rows) == {"ann", "ben"}
    assert (rows["ann"].status, rows["ann"].address) == ("pending", "ann@example.com")
    assert rows["ben"].status == "skipped" and rows["ben"].error
    # and the frame says who was told
    escalated = [
        e for e in _logged_events(redis_client, org.pk) if e["type"] == "incident_escalated"
    ]
    assert escalated[-1]["data"]["escalation"] == {
        "level": 1,
        "reason": "occurrences",
        "team": "oncall",
        "members": ["ann", "ben"],
        "notified": ["ann"],
        "unreachable": ["ben"],
    }

    # when the job runs, twice (a duplicate or a retried job)
    assert incident_step_notify(step.pk) == 1
    assert incident_step_notify(step.pk) == 0

    # then ann got exactly one email about that level
    assert [m.to for m in mail.outbox] == [["ann@example.com"]]
    assert "level 1" in mail.outbox[0].subject and str(incident.uuid) in mail.outbox[0].body
    ann = IncidentNotification.objects.get(step=step, username="ann")
    assert (ann.status, ann.attempts, ann.error) == ("sent", 1, "")
    assert ann.sent_at is not None
    # and the incident detail shows it on the step
    detail = agent_ann.client().get(f"/api/incidents/{incident.uuid}/").json()
    told = detail["steps"][0]["notifications"]
    assert [(n["username"], n["status"]) for n in told] == [("ann", "sent"), ("ben", "skipped")]


def test_a_later_trigger_or_check_does_not_notify_again(org, oncall, locmem):
    rule = _oncall_rule(org)
    incident = _occur(rule.pk)
    _occur(rule.pk, count=5)
    assert Incident.objects.get(pk=incident.pk).occurrences == 6
    assert IncidentNotification.objects.filter(username="ann").count() == 1


def test_a_failed_email_is_recorded_and_retried_with_backoff(org, oncall, settings):
    rule = _oncall_rule(org)
    step = IncidentStep.objects.get(incident=_occur(rule.pk), kind="level")

    settings.EMAIL_BACKEND = "tests.escalation.test_notifications.FailingBackend"
    assert incident_step_notify(step.pk) == 0
    ann = IncidentNotification.objects.get(step=step, username="ann")
    assert (ann.status, ann.attempts) == ("pending", 1)
    assert "smtp down" in ann.error and ann.next_attempt_at is not None

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    assert incident_step_notify(step.pk) == 0  # not due yet
    with time_machine.travel(ann.next_attempt_at + timedelta(seconds=1)):
        assert incident_step_notify(step.pk) == 1
    ann.refresh_from_db()
    assert (ann.status, ann.attempts, ann.error) == ("sent", 2, "")
    assert len(mail.outbox) == 1


def test_sweeper_reclaims_a_notification_whose_worker_died(org, oncall, locmem):
    rule = _oncall_rule(org)
    step = IncidentStep.objects.get(incident=_occur(rule.pk), kind="level")
    # a worker claimed it and was killed before recording the outcome
    IncidentNotification.objects.filter(username="ann").update(
        status="sending", attempts=1, claimed_at=timezone.now()
    )
    assert incident_step_notify(step.pk) == 0  # claimed: nobody else sends it
    with time_machine.travel(timezone.now() + timedelta(minutes=10)):
        escalation_sweep()
    ann = IncidentNotification.objects.get(username="ann")
    assert ann.status == "pending"
    assert incident_step_notify(step.pk) == 1
    assert IncidentNotification.objects.get(username="ann").attempts == 2


def test_a_level_pointing_at_another_organizations_team_notifies_nobody(
    org, oncall, make_org, make_agent, locmem
):
    rule = rule_save(
        organization=org,
        code="r1",
        triggers=[{"service": "api", "status": 500}],
        levels=[{"level": 1, "after_occurrences": 1}],
    )
    # a raw edit pointed the level at another organization's team (with members)
    other = make_org("third")
    zed = make_agent("zed", other)
    zed.user.email = "zed@example.com"
    zed.user.save()
    foreign = team_save(organization=other, slug="x", members=["zed"])
    rule.levels.update(team=foreign)

    incident = _occur(rule.pk)

    step = IncidentStep.objects.get(incident=incident, kind="level")
    assert step.team_id is None
    assert not IncidentNotification.objects.exists()
