"""Mailing admin through ServiceAdmin (core/service_admin.py): what the services do after
commit happens once for an admin write too, and nothing for a refused one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from mailing.models import Mailing
from tests.admin_events import published

pytestmark = pytest.mark.django_db


def _when(value: Any, name: str) -> dict[str, str]:
    return {f"{name}_0": value.strftime("%Y-%m-%d"), f"{name}_1": value.strftime("%H:%M:%S")}


def _mailing_form(org: Any, start: Any, end: Any) -> dict[str, Any]:
    return {
        "organization": org.pk,
        "name": "spring",
        "kind": "campaign",
        **_when(start, "start_at"),
        **_when(end, "end_at"),
        "text": "Hello",
        "context": "{}",
        "operator_codes": "[]",
        "tags": "[]",
        "client_ids": "[]",
        "priority": 5,
    }


def test_adding_a_mailing_schedules_its_start_after_commit_only(
    staff, org, django_capture_on_commit_callbacks
):
    start = timezone.now() + timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        refused = staff.post(
            "/admin/mailing/mailing/add/", _mailing_form(org, start, start - timedelta(hours=2))
        )
    assert refused.status_code == 200 and b"errorlist" in refused.content
    assert callbacks == [] and not Mailing.objects.exists()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        added = staff.post(
            "/admin/mailing/mailing/add/", _mailing_form(org, start, start + timedelta(hours=2))
        )
    assert added.status_code == 302
    mailing = Mailing.objects.get()
    assert (mailing.status, mailing.name) == ("scheduled", "spring")
    assert len(callbacks) == 2  # its start and update_mailing, both from mailing_create


def test_cancel_action_publishes_each_mailing_finished_once(
    staff, org, redis_client, django_capture_on_commit_callbacks
):
    from mailing.services import mailing_create

    now = timezone.now()
    mailings = [
        mailing_create(
            organization=org,
            start_at=now + timedelta(hours=1),
            end_at=now + timedelta(hours=2),
            text=f"m{i}",
        )
        for i in range(2)
    ]
    action = {"action": "cancel", "_selected_action": [m.pk for m in mailings]}
    with published(django_capture_on_commit_callbacks, org.pk) as events:
        response = staff.post("/admin/mailing/mailing/", action)
    assert response.status_code == 302
    assert events == ["mailing_finished", "mailing_finished"]
    assert set(Mailing.objects.values_list("status", flat=True)) == {"cancelled"}
