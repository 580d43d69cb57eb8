"""/metrics of the web process shows what the workers' forked work horses counted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.utils import timezone

from tests.conftest import METRICS_AUTH, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _samples(web: Any) -> dict[str, float]:
    text = httpx.get(f"{web.url}/metrics", headers=METRICS_AUTH, timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_web_metrics_count_deliveries_made_by_a_worker(
    org: Any, make_client: Any, sender: Any, start_web: Any, start_worker: Any
) -> None:
    from mailing.services import mailing_create

    # given: a web process and a worker (its jobs run in forked work horses), 7 clients
    for _ in range(7):
        make_client(org)
    web = start_web()
    start_worker(MAILING_BATCH_SIZE="3")
    before = _samples(web)
    assert before.get('mailing_deliveries_total{result="sent"}', 0.0) == 0.0
    # when
    now = timezone.now()
    mailing = mailing_create(
        organization=org, start_at=now, end_at=now + timedelta(minutes=5), text="Hi {{ name }}"
    )

    def finished() -> bool:
        mailing.refresh_from_db()
        return mailing.status == "finished"

    wait_until(finished, timeout=30)
    # then: the counters reach the web's /metrics with the right values
    samples = _samples(web)
    assert samples['mailing_deliveries_total{result="sent"}'] == 7.0
    assert samples['sender_requests_total{outcome="ok"}'] == 7.0
    assert samples["sender_request_seconds_count"] == 7.0
    assert samples["mailing_dispatch_batch_size_sum"] == 7.0
    assert samples["mailing_dispatch_batch_size_count"] >= 3  # batches of at most 3
    assert samples['mailing_dispatch_batch_seconds_count{phase="total"}'] >= 3
    # and the database gauges are still there
    assert samples['mailing_messages{status="sent"}'] == 7.0
    assert samples['mailings{status="finished"}'] == 1.0
