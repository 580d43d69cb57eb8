"""Mailing tests share one Redis per run (flushed once, at its start): each test starts
with every transport's circuit breaker closed, whatever an earlier test (an SMTP server
answering 421 to everything, a sender down) left open for its backoff."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _breakers_closed(redis_client: Any) -> Iterator[None]:
    from mailing.dispatch import BREAKER_KEYS

    redis_client.delete(*BREAKER_KEYS)
    yield
