"""Priority decides which mailing a worker serves first."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_mailing_queue_follows_priority(settings: Any) -> None:
    from core.jobs import ALL_QUEUES, QUEUE_MAILING, QUEUE_MAILING_HIGH
    from mailing.dispatch import mailing_queue

    settings.MAILING_HIGH_PRIORITY = 8
    assert mailing_queue(8) == mailing_queue(10) == QUEUE_MAILING_HIGH
    assert mailing_queue(7) == mailing_queue(1) == QUEUE_MAILING
    # a worker listens to the high queue before the normal one
    assert ALL_QUEUES.index(QUEUE_MAILING_HIGH) < ALL_QUEUES.index(QUEUE_MAILING)


def test_high_priority_notification_overtakes_a_running_campaign(
    org: Any, sender: Any, start_worker: Any
) -> None:
    from chat.models import Client
    from core.models import Delivery
    from mailing.services import mailing_create, notification_send

    # given: one worker busy with a big low-priority campaign (its slice is long enough
    # to send it all in one go, were it not for the priority)
    total = 600
    Client.objects.bulk_create(
        [
            Client(organization=org, name=f"c{n}", phone=f"7903{n:07d}", operator_code="903")
            for n in range(total)
        ]
    )
    vip = Client.objects.create(
        organization=org, name="vip", phone="79160000001", operator_code="916", tag="vip"
    )
    sender.control(latency_ms=100)
    start_worker(
        MAILING_BATCH_SIZE="20",
        MAILING_CONCURRENCY="20",
        MAILING_LANES="1",
        MAILING_SLICE_SECONDS="120",
    )
    now = timezone.now()
    campaign = mailing_create(
        organization=org,
        start_at=now,
        end_at=now + timedelta(minutes=10),
        text="Sale {{ name }}",
        operator_codes=["903"],
        priority=1,
    )
    campaign_rows = Delivery.objects.filter(mailing_message__mailing=campaign)
    wait_until(lambda: campaign_rows.filter(status="sent").count() >= 40, timeout=30)

    # when: a priority-9 notification comes in
    notification = notification_send(
        organization=org, text="Your code", client_ids=[vip.pk], priority=9
    )
    row = Delivery.objects.filter(mailing_message__mailing=notification)
    wait_until(lambda: row.filter(status="sent").exists(), timeout=30)
    wait_until(lambda: not campaign_rows.exclude(status="sent").exists(), timeout=60)

    # then: it was sent while the campaign was still sending (by timestamps)
    sent_at = row.get().sent_at
    after = campaign_rows.filter(sent_at__gt=sent_at).count()
    assert after > total / 4, f"only {after} campaign messages went after the notification"
