"""Service-level tests: validation, audience, materialization (no HTTP, no worker)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
from django.utils import timezone

from core.errors import ApplicationError
from core.events import log_key
from tests.conftest import METRICS_AUTH

pytestmark = pytest.mark.django_db


def test_notification_send_merges_ids_and_tags(
    org: Any, make_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from mailing.models import Mailing
    from mailing.services import audience, notification_send

    # given: one client picked by id, two by tag, one neither
    by_id = make_client(org, tag="other")
    tagged = [make_client(org, tag="vip"), make_client(org, tag="vip")]
    make_client(org, tag="other")
    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        mailing = notification_send(
            organization=org, text="Hi {{ name }}", client_ids=[by_id.pk], tags=["vip"]
        )
    # then: starts now, both selections merged, dispatch enqueued after commit
    assert mailing.kind == Mailing.Kind.NOTIFICATION
    assert mailing.start_at <= timezone.now() < mailing.end_at
    assert set(audience(mailing).values_list("pk", flat=True)) == {
        by_id.pk,
        *(c.pk for c in tagged),
    }
    assert len(callbacks) == 2  # the dispatch job and the update_mailing event


def test_notification_send_rejects_unknown_client(org: Any) -> None:
    from mailing.services import notification_send

    with pytest.raises(ApplicationError) as exc:
        notification_send(organization=org, text="x", client_ids=[999999])
    assert "client_ids" in exc.value.fields


def test_daily_report_emails_admins_once_a_day(
    org: Any,
    make_agent: Any,
    make_client: Any,
    mailoutbox: Any,
    redis_client: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from core.models import Membership
    from core.services import agent_create, membership_add
    from mailing.services import mailing_report_send_all, notification_send

    admin = agent_create(username="boss", password="pw", email="boss@example.com")
    membership_add(organization=org, user=admin, role=Membership.Role.ADMIN)
    agent = agent_create(username="agent", password="pw", email="agent@example.com")
    membership_add(organization=org, user=agent, role=Membership.Role.AGENT)
    client = make_client(org)
    with django_capture_on_commit_callbacks(execute=False):
        mailing = notification_send(organization=org, text="hi", client_ids=[client.pk])
    assert mailing_report_send_all() == 1
    assert mailing_report_send_all() == 0  # the job ran twice: one email
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["boss@example.com"]
    assert f"{mailing.pk}\tscheduled" in mailoutbox[0].body


def test_metrics_expose_mailing_gauges(agent: Any) -> None:
    from django.test import Client as HttpClient

    # Counted values are proven in test_metrics.py (a real worker, the web's /metrics).
    body = HttpClient().get("/metrics", headers=METRICS_AUTH).content.decode()
    assert 'mailing_deliveries_total{result="sent"}' in body
    assert 'mailing_dispatch_batch_seconds_count{phase="claim"}' in body
    assert "# TYPE mailings gauge" in body


def test_cancel_publishes_mailing_finished(
    org: Any, make_client: Any, redis_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    import json

    import msgpack

    from mailing.services import mailing_cancel, notification_send

    client = make_client(org)
    with django_capture_on_commit_callbacks(execute=False):
        mailing = notification_send(organization=org, text="hi", client_ids=[client.pk])
    with django_capture_on_commit_callbacks(execute=True):
        mailing_cancel(mailing=mailing)
    # the organization's event log (what a reconnecting websocket replays)
    entries = redis_client.xrange(log_key(org.pk))
    events = [json.loads(fields[b"f"]) for _, fields in entries]
    finished = [e for e in events if e["type"] == "mailing_finished"]
    assert len(finished) == 1
    data = json.loads(finished[0]["data"])
    assert data["id"] == mailing.pk and data["status"] == "cancelled"
    assert msgpack.unpackb(msgpack.packb(finished[0])) == finished[0]


def test_window_helpers_handle_overnight_windows() -> None:
    from datetime import datetime, time

    from mailing.windows import in_window, next_opening

    late = datetime(2026, 1, 1, 23, 30, tzinfo=UTC)
    assert in_window(late, "UTC", time(22, 0), time(6, 0))
    assert not in_window(late, "UTC", time(9, 0), time(21, 0))
    assert next_opening(late, "UTC", time(9, 0), time(21, 0)) == datetime(
        2026, 1, 2, 9, 0, tzinfo=UTC
    )
    # 23:30 UTC is 02:30 in Moscow (UTC+3): the 09:00 opening is 06:00 UTC
    assert next_opening(late, "Europe/Moscow", time(9, 0), time(21, 0)) == datetime(
        2026, 1, 2, 6, 0, tzinfo=UTC
    )


def test_mailing_events_carry_the_whole_mailing(
    org: Any, make_client: Any, redis_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Issue 13 item 7: a console that never listed the mailing shows its name and dates
    from its events alone (update_mailing on create/edit, mailing_finished)."""
    import json

    from core.events import _keys
    from mailing.representations import MailingSerializer
    from mailing.services import mailing_cancel, mailing_update, notification_send

    redis_client.delete(*_keys(org.pk)[:3])  # ids repeat between tests; the log does not
    client = make_client(org)
    with django_capture_on_commit_callbacks(execute=True):
        mailing = notification_send(
            organization=org, text="hi", client_ids=[client.pk], name="Spring sale"
        )
        mailing_update(mailing=mailing, data={"name": "Spring sale!"})
        mailing_cancel(mailing=mailing)
    entries = redis_client.xrange(log_key(org.pk))
    events = [json.loads(fields[b"f"]) for _, fields in entries]
    mine = [
        (e["type"], json.loads(e["data"]))
        for e in events
        if e["type"] in ("update_mailing", "mailing_finished")
        and json.loads(e["data"])["id"] == mailing.pk
    ]
    assert [t for t, _ in mine] == ["update_mailing", "update_mailing", "mailing_finished"]
    assert [d["name"] for _, d in mine] == ["Spring sale", "Spring sale!", "Spring sale!"]
    mailing.refresh_from_db()
    final = mine[-1][1]
    assert {k: v for k, v in final.items() if k != "counts"} == MailingSerializer(mailing).data
    assert "total" in final["counts"] and final["start_at"] and final["end_at"]
