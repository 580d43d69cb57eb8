"""Mailing tests share one Redis per run (flushed once, at its start), so each test starts
with every transport's circuit breaker closed and the urgent mailing queue empty, whatever
an earlier test left there: an SMTP server answering 421 to everything opens the email
breaker for its backoff, and a job an earlier test enqueued (no worker runs it) makes
every campaign lane yield to "urgent work" and send nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _breakers_closed_and_no_urgent_work(redis_client: Any) -> Iterator[None]:
    from core.jobs import QUEUE_MAILING_HIGH, get_queue
    from mailing.dispatch import BREAKER_KEYS

    redis_client.delete(*BREAKER_KEYS)
    get_queue(QUEUE_MAILING_HIGH).empty()
    yield
