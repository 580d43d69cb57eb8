"""chat_deliveries_sweep: what it re-enqueues, and what it must not keep finding."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from chat import services
from chat.jobs import chat_deliveries_sweep
from core.jobs import get_queue
from core.models import Delivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat_queue(redis_client: Any) -> Any:
    queue = get_queue("chat")
    queue.empty()
    yield queue
    queue.empty()


def _later() -> Any:
    return time_machine.travel(timezone.now() + timedelta(minutes=5), tick=True)


def test_overdue_pending_message_is_re_enqueued(agent, help_desk, chat_queue):
    message = services.message_create(help_desk=help_desk, text="lost job", sender=agent.user)
    assert chat_deliveries_sweep() == 0  # not overdue yet

    with _later():
        assert chat_deliveries_sweep() == 1

    assert [job.args for job in chat_queue.jobs] == [(message.pk,)]


def test_deliveries_of_deleted_messages_are_failed_not_swept_forever(agent, help_desk, chat_queue):
    # given a message whose help desk is deleted before its delivery ran
    message = services.message_create(help_desk=help_desk, text="gone", sender=agent.user)
    delivery_id = message.delivery_id
    services.help_desk_delete(help_desk=help_desk)

    # when the sweeper runs
    with _later():
        chat_deliveries_sweep()

    # then the orphan delivery is closed, so no later sweep looks at it again
    delivery = Delivery.objects.get(pk=delivery_id)
    assert delivery.status == "failed"
    assert delivery.last_error
    assert chat_queue.count == 0


def test_retry_closes_the_previous_chain_if_it_was_still_pending(agent, help_desk, chat_queue):
    message = services.message_create(help_desk=help_desk, text="x", sender=agent.user)
    old = message.delivery_id
    services.message_status_apply(message=message, status="failed")  # e.g. a provider receipt
    services.message_retry(message=message)

    with _later():
        chat_deliveries_sweep()

    assert Delivery.objects.get(pk=old).status == "failed"
    assert [job.args for job in chat_queue.jobs] == [(message.pk,)]  # only the new chain


def test_many_orphans_do_not_starve_a_real_overdue_message(agent, org, help_desk, chat_queue):
    # given more orphan pending chat deliveries than one sweep looks at, created first
    Delivery.objects.bulk_create(
        Delivery(organization=org, source="chat", phone=79160000000, text="orphan")
        for _ in range(1001)
    )
    message = services.message_create(help_desk=help_desk, text="real", sender=agent.user)

    # when one sweep runs
    with _later():
        chat_deliveries_sweep()

    # then the real message is re-enqueued
    assert (message.pk,) in [job.args for job in chat_queue.jobs]
