"""SWEEP_GRACE: how overdue a pending chat delivery must be before the sweeper
re-enqueues it (core/outbox deliveries_overdue; the chaos test lowers it)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from chat import services
from core.outbox import deliveries_overdue

pytestmark = pytest.mark.django_db


def test_a_pending_delivery_is_overdue_after_sweep_grace(agent, help_desk, settings):
    # given a message whose job was lost, 10 s ago
    message = services.message_create(help_desk=help_desk, text="lost job", sender=agent.user)
    with time_machine.travel(timezone.now() + timedelta(seconds=10), tick=False):
        # then with the default grace (60 s) it is not overdue yet
        assert deliveries_overdue(source="chat") == []
        # and with SWEEP_GRACE=5 it is
        settings.SWEEP_GRACE = 5
        assert deliveries_overdue(source="chat") == [message.delivery_id]
        # an explicit grace still wins
        assert deliveries_overdue(source="chat", grace=timedelta(seconds=30)) == []
