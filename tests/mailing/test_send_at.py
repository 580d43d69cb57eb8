"""Issue 15: a notification with `send_at` runs at its time, not before, and by design
within a second of it (measured by contrib/bench/send_at.py, not asserted here).

The design pinned here: its start job is scheduled for the exact `send_at` on the
`mailing_high` queue (which workers take before any campaign's lane, and which a running
campaign's lane yields to after its batch), and that one job starts, materializes and
sends a one-batch audience itself: no lane job waits in a queue behind it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from rq.registry import ScheduledJobRegistry

from core.jobs import QUEUE_MAILING, QUEUE_MAILING_HIGH, get_queue

pytestmark = pytest.mark.django_db


def _scheduled(redis_client: Any, queue: str) -> list[float]:
    key = ScheduledJobRegistry(queue=get_queue(queue)).key
    return [score for _, score in redis_client.zrange(key, 0, -1, withscores=True)]


def _queued(queue: str) -> list[str]:
    return [job.func_name for job in get_queue(queue).jobs]


def test_a_notifications_start_job_waits_on_the_high_queue_for_its_exact_time(
    org: Any, make_client: Any, redis_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from mailing.services import notification_send

    redis_client.flushdb()
    client = make_client(org)
    send_at = timezone.now() + timedelta(seconds=30, milliseconds=250)
    # a low priority: its lanes would use the `mailing` queue, its start does not
    with django_capture_on_commit_callbacks(execute=True):
        notification_send(
            organization=org, text="Hi", client_ids=[client.pk], priority=2, send_at=send_at
        )
    assert _scheduled(redis_client, QUEUE_MAILING_HIGH) == [
        pytest.approx(send_at.timestamp(), abs=1e-3)
    ]
    assert _scheduled(redis_client, QUEUE_MAILING) == []


def test_a_due_notification_is_sent_by_its_start_job_alone_and_not_before_its_time(
    org: Any,
    make_client: Any,
    sender: Any,
    redis_client: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from core.models import Delivery
    from mailing import jobs
    from mailing.models import Mailing
    from mailing.services import notification_send

    redis_client.flushdb()
    client = make_client(org)
    send_at = timezone.now() + timedelta(seconds=20, milliseconds=137)
    with django_capture_on_commit_callbacks(execute=True):
        mailing = notification_send(
            organization=org, text="Code {{ name }}", client_ids=[client.pk], send_at=send_at
        )
    redis_client.flushdb()

    # when its start job runs early: nothing is created or sent
    with django_capture_on_commit_callbacks(execute=True):
        jobs.mailing_start(mailing.pk)
    mailing.refresh_from_db()
    assert mailing.status == Mailing.Status.SCHEDULED
    assert not Delivery.objects.filter(mailing_message__mailing=mailing).exists()
    assert sender.stats()["accepted_total"] == 0

    # when it runs at its time
    redis_client.flushdb()
    with (
        time_machine.travel(send_at + timedelta(milliseconds=1), tick=True),
        django_capture_on_commit_callbacks(execute=True),
    ):
        jobs.mailing_start(mailing.pk)

    # then the job itself sent it, at or after send_at, and enqueued no lane
    delivery = Delivery.objects.get(mailing_message__mailing=mailing)
    assert delivery.status == "sent" and sender.accepted(delivery.pk) == 1
    assert delivery.sent_at is not None and delivery.sent_at >= send_at
    mailing.refresh_from_db()
    assert mailing.started_at is not None and mailing.started_at >= send_at
    assert mailing.status == Mailing.Status.FINISHED
    for queue in (QUEUE_MAILING, QUEUE_MAILING_HIGH):
        assert "mailing.jobs.mailing_dispatch" not in _queued(queue)
        assert _scheduled(redis_client, queue) == []


def test_an_audience_larger_than_a_batch_still_gets_its_lanes(
    org: Any,
    make_client: Any,
    redis_client: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from mailing.services import mailing_create, mailing_start

    settings.MAILING_BATCH_SIZE = 2
    settings.MAILING_LANES = 2
    for _ in range(3):
        make_client(org)
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        mailing = mailing_create(
            organization=org, start_at=now, end_at=now + timedelta(hours=1), text="Hi"
        )
    redis_client.flushdb()
    with django_capture_on_commit_callbacks(execute=True):
        # its lanes are enqueued (the test has no worker: they stay queued)
        assert mailing_start(mailing_id=mailing.pk, inline_lane=True) is False
    assert _queued(QUEUE_MAILING).count("mailing.jobs.mailing_dispatch") == 2


def test_a_notifications_lanes_neither_wait_behind_campaigns_nor_yield_to_other_urgent_work(
    redis_client: Any,
) -> None:
    from mailing.models import Mailing
    from mailing.queues import mailing_queue, urgent_work_waiting

    redis_client.flushdb()
    get_queue(QUEUE_MAILING_HIGH).enqueue("mailing.jobs.mailing_start", 0)  # a start waits
    notification, campaign = Mailing.Kind.NOTIFICATION, Mailing.Kind.CAMPAIGN
    # a low-priority notification: on the high queue, and its lane does not hand its
    # worker back to the other notification's start (it would then wait behind campaigns)
    assert mailing_queue(2, notification) == QUEUE_MAILING_HIGH
    assert urgent_work_waiting(2, notification) is False
    # a campaign of the same priority stays behind, and yields
    assert mailing_queue(2, campaign) == QUEUE_MAILING
    assert urgent_work_waiting(2, campaign) is True
    redis_client.flushdb()
