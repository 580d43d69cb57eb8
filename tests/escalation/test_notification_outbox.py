"""Incident notifications as an outbox channel (core.outbox), driven through the job:
each email try is an attempt row, and a job whose claim was reclaimed during its call
(its worker looked dead) cannot overwrite the row the sweeper handed to another."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

import escalation.notifications as notifications
from core.sender import SendResult
from escalation.models import IncidentNotification
from escalation.notifications import NOTIFICATIONS, notifications_overdue, step_notify
from tests.core.test_outbox_channels import make_notification

pytestmark = pytest.mark.django_db


@pytest.fixture
def locmem(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []


def test_each_email_is_an_attempt_row(org: Any, locmem: None) -> None:
    n = IncidentNotification.objects.get(pk=make_notification(org))
    assert step_notify(step_id=n.step_id) == 1
    n.refresh_from_db()
    assert (n.status, n.attempts, n.claim_token) == ("sent", 1, "")
    assert list(n.attempt_rows.values_list("number", "outcome", "error")) == [(1, "ok", "")]
    assert len(mail.outbox) == 1


def test_a_job_reclaimed_during_its_call_does_not_overwrite_the_row(
    org: Any, locmem: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = IncidentNotification.objects.get(pk=make_notification(org))
    step_id = n.step_id

    # given a job so slow that, during its call, the sweeper takes its claim back
    def slow_send(**kwargs: Any) -> SendResult:
        later = timezone.now() + NOTIFICATIONS.stale_after() + timedelta(seconds=1)
        with time_machine.travel(later):
            assert notifications_overdue() == [step_id]
        return SendResult("ok", None, 1)

    monkeypatch.setattr(notifications, "email_send", slow_send)
    # when its answer finally comes, it counts nothing sent and leaves the row pending
    assert step_notify(step_id=step_id) == 0
    n.refresh_from_db()
    assert (n.status, n.claim_token, n.sent_at) == ("pending", "", None)
    # (its attempt is recorded with the outcome it saw: the call did happen)
    assert list(n.attempt_rows.values_list("number", "outcome")) == [(1, "ok")]

    # then the next job sends it, as attempt 2
    monkeypatch.undo()
    assert step_notify(step_id=step_id) == 1
    n.refresh_from_db()
    assert (n.status, n.attempts) == ("sent", 2)
    assert list(n.attempt_rows.values_list("number", "outcome")) == [(1, "ok"), (2, "ok")]
