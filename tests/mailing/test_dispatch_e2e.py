"""Mailing dispatch end to end: real RQ workers, the sender simulator over HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _mailing(org: Any, **fields: Any) -> Any:
    from mailing.services import mailing_create

    now = timezone.now()
    fields.setdefault("start_at", now)
    fields.setdefault("end_at", now + timedelta(minutes=10))
    fields.setdefault("text", "Hello {{ name }}")
    return mailing_create(organization=org, **fields)


def _status(mailing: Any) -> str:
    mailing.refresh_from_db()
    return str(mailing.status)


def _counts(mailing: Any) -> dict[str, int]:
    from mailing.selectors import mailing_counts

    return mailing_counts(mailing_id=mailing.pk)


def test_campaign_delivers_every_message_once(
    org: Any, make_client: Any, sender: Any, start_worker: Any
) -> None:
    from core.models import DeliveryAttempt
    from mailing.models import MailingMessage

    # given: 30 clients, a mailing open now, small batches so there are several
    clients = [make_client(org) for _ in range(30)]
    start_worker(MAILING_BATCH_SIZE="7")
    # when
    mailing = _mailing(org)
    # then
    wait_until(lambda: _status(mailing) == "finished", timeout=30)
    assert _counts(mailing)["sent"] == 30
    stats = sender.stats()
    assert stats["unique"] == 30 and stats["duplicates"] == 0
    messages = MailingMessage.objects.filter(mailing=mailing).select_related("delivery")
    assert {m.client_id for m in messages} == {c.pk for c in clients}
    for m in messages:
        assert sender.accepted(m.pk) == 1
        assert m.delivery.text == f"Hello {m.client.name}"
    assert DeliveryAttempt.objects.filter(delivery__mailing_message__mailing=mailing).count() == 30


def test_future_mailing_starts_by_itself(
    org: Any, make_client: Any, sender: Any, start_worker: Any
) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT, Process, subprocess_env

    # given: the production processes: a worker with its scheduler, and the cron
    make_client(org)
    start_worker()
    cron = Process(
        subprocess.Popen([sys.executable, "manage.py", "run_cron"], cwd=ROOT, env=subprocess_env())
    )
    try:
        start_at = timezone.now() + timedelta(seconds=2)
        mailing = _mailing(org, start_at=start_at)
        assert _status(mailing) == "scheduled"
        # then: it starts and is delivered with nothing called from here (whichever
        # fires first: the job scheduled at start_at, or the cron's mailing_sweep)
        wait_until(lambda: _status(mailing) == "finished", timeout=40, interval=0.2)
    finally:
        cron.stop()
    assert mailing.started_at >= start_at
    assert _counts(mailing)["sent"] == 1


def test_sweeper_starts_a_due_mailing_whose_job_was_lost(
    org: Any, make_client: Any, sender: Any, start_worker: Any, redis_client: Any
) -> None:
    from mailing.jobs import mailing_sweep

    # given: a due mailing whose scheduled job is gone (Redis lost everything)
    make_client(org)
    mailing = _mailing(org, start_at=timezone.now() + timedelta(milliseconds=300))
    redis_client.flushdb()
    start_worker()
    # when: the cron sweeper runs (as `run_cron` does every few seconds)
    wait_until(lambda: mailing_sweep()["started"] == 1 or _status(mailing) != "scheduled")
    # then
    wait_until(lambda: _status(mailing) == "finished", timeout=30)
    assert _counts(mailing)["sent"] == 1


def test_end_time_cuts_off_pending_retries(
    org: Any, make_client: Any, sender: Any, start_worker: Any
) -> None:
    # given: a sender that fails everything until after the end time
    for _ in range(5):
        make_client(org)
    from rq import Worker

    from core.redis import get_redis

    sender.control(error_rate=1.0)
    start_worker()
    # The end time counts from a worker that is ready: on a loaded machine one still
    # booting saw the end come before it made any call. (The last MAILING_END_GUARD
    # seconds start no call.)
    wait_until(lambda: Worker.count(connection=get_redis()) >= 1, timeout=30)
    mailing = _mailing(org, end_at=timezone.now() + timedelta(seconds=6))
    # then: the mailing ends with every message expired, none accepted
    wait_until(lambda: _status(mailing) == "finished", timeout=30)
    sender.control(error_rate=0)
    counts = _counts(mailing)
    assert counts["expired"] == 5 and counts["sent"] == 0
    assert sender.stats()["accepted_total"] == 0
    assert sender.stats()["errors"] >= 5  # it did try


def test_end_time_with_a_slow_flaky_sender_sends_nothing_after_it(
    org: Any, make_client: Any, sender: Any, start_worker: Any, settings: Any
) -> None:
    # given: a slow sender that accepts some calls and fails most, so retries are
    # still pending when the end time comes
    from rq import Worker

    from core.models import Delivery, DeliveryAttempt
    from core.redis import get_redis

    clients = 30  # at most 0.7**30 (~0.002 %) of runs see no first attempt accepted
    for _ in range(clients):
        make_client(org)
    sender.control(latency_ms=300, error_rate=0.7)
    start_worker()
    # the end time counts from a worker that is ready, not from one still booting
    wait_until(lambda: Worker.count(connection=get_redis()) >= 1, timeout=30)
    end_at = timezone.now() + timedelta(seconds=5)
    mailing = _mailing(org, end_at=end_at)
    rows = Delivery.objects.filter(mailing_message__mailing=mailing)
    # when the end time passes
    wait_until(lambda: _status(mailing) == "finished", timeout=30)
    requests_at_finish = sender.stats()["requests"]
    wait_until(lambda: timezone.now() > end_at + timedelta(seconds=0.5), timeout=10)
    # then: nothing is pending any more; the retries that were due are expired
    counts = _counts(mailing)
    assert counts["pending"] == counts["sending"] == 0
    assert counts["sent"] >= 1 and counts["expired"] >= 1
    assert counts["sent"] + counts["expired"] + counts["failed"] == clients
    for row in rows.filter(status="expired"):  # retries the end time cut off
        outcomes = set(row.attempt_rows.values_list("outcome", flat=True))
        assert outcomes <= {"transient"}, (row.pk, outcomes)
    # no HTTP call started after the end time (an attempt is recorded after its call;
    # minus its duration is at or after its start)
    calls = DeliveryAttempt.objects.filter(delivery__in=rows).exclude(
        error="end time reached before the call"
    )
    assert calls.exists()
    for attempt in calls:
        started = attempt.created_at - timedelta(milliseconds=attempt.duration_ms)
        assert started <= end_at - timedelta(seconds=settings.MAILING_END_GUARD) + timedelta(
            milliseconds=200
        ), (attempt.pk, started, end_at)
    # and the simulator accepted nothing after it: what it accepted is exactly what the
    # platform recorded as sent before the end, and no request came in afterwards
    stats = sender.stats()
    assert stats["requests"] == requests_at_finish
    assert stats["accepted_total"] == counts["sent"]
    for row in rows:
        accepted = sender.accepted(row.pk)
        if row.status == "sent":
            assert accepted == 1 and row.sent_at <= end_at
        else:
            assert accepted == 0, (row.pk, row.status)


def test_promo_mailing_skips_opted_out_clients(
    org: Any, make_client: Any, sender: Any, start_worker: Any
) -> None:
    from mailing.models import MailingMessage

    keen = make_client(org)
    opted_out = make_client(org, promo_opt_out=True)
    start_worker()
    promo = _mailing(org, promo=True)
    wait_until(lambda: _status(promo) == "finished", timeout=30)
    assert list(
        MailingMessage.objects.filter(mailing=promo).values_list("client_id", flat=True)
    ) == [keen.pk]
    assert sender.stats()["phones"] == 1
    # a transactional (non-promo) send still reaches the opted-out client
    service = _mailing(org, promo=False, client_ids=[opted_out.pk], tags=["none"])
    wait_until(lambda: _status(service) == "finished", timeout=30)
    assert sender.stats()["phones"] == 2


def test_client_outside_its_window_is_deferred_until_it_opens(
    org: Any, make_client: Any, sender: Any, start_worker: Any
) -> None:
    from mailing.models import MailingMessage

    # given: a 3-hour window that opens in a few seconds for a UTC client, and is
    # already open for a client two hours ahead (UTC+2)
    now = timezone.now()
    opens = (now + timedelta(seconds=4)).replace(microsecond=0)
    later = make_client(org, timezone="UTC")
    now_open = make_client(org, timezone="Etc/GMT-2")
    start_worker()
    mailing = _mailing(
        org, window_start=opens.time(), window_end=(opens + timedelta(hours=3)).time()
    )

    def sent(client: Any) -> bool:
        row = MailingMessage.objects.filter(mailing=mailing, client=client).first()
        return row is not None and row.delivery.status == "sent"

    # then: the open client is served at once; the other waits for its window
    wait_until(lambda: sent(now_open), timeout=20)
    message = {m.client_id: m for m in MailingMessage.objects.filter(mailing=mailing)}
    deferred = message[later.pk].delivery
    deferred.refresh_from_db()
    assert deferred.status == "pending" or deferred.sent_at >= opens
    wait_until(lambda: sent(later), timeout=30)
    deferred.refresh_from_db()
    assert deferred.sent_at >= opens
    wait_until(lambda: _status(mailing) == "finished", timeout=20)


def test_sender_down_then_back_delivers_everything_once(
    org: Any, make_client: Any, sender: Any, start_worker: Any
) -> None:
    from core.models import Delivery, DeliveryAttempt

    # given: the sender is down when the mailing starts
    for _ in range(20):
        make_client(org)
    sender.control(down=True)
    start_worker()
    mailing = _mailing(org)
    wait_until(lambda: sender.stats()["refused"] >= 20, timeout=20)
    wait_until(lambda: sender.stats()["refused"] >= 30, timeout=20)  # probes while down
    # when: it comes back
    sender.control(down=False)
    # then: everything is delivered, once, and the outage did not burn the retries
    wait_until(lambda: _status(mailing) == "finished", timeout=40)
    assert _counts(mailing)["sent"] == 20
    stats = sender.stats()
    assert stats["phones"] == 20 and stats["phones_several_ids"] == 0
    deliveries = Delivery.objects.filter(mailing_message__mailing=mailing)
    assert max(d.attempts for d in deliveries) < 3
    assert (
        DeliveryAttempt.objects.filter(delivery__in=deliveries, outcome="transient").count() >= 20
    )


def test_garbage_answers_are_retried(
    org: Any, make_client: Any, sender: Any, start_worker: Any
) -> None:
    from core.models import DeliveryAttempt

    for _ in range(20):
        make_client(org)
    sender.control(garbage_rate=0.3)
    start_worker()
    mailing = _mailing(org)
    wait_until(lambda: _status(mailing) == "finished", timeout=40)
    assert _counts(mailing)["sent"] == 20
    garbage = DeliveryAttempt.objects.filter(
        delivery__mailing_message__mailing=mailing, outcome="transient", status_code=200
    )
    assert garbage.exists()
    assert sender.stats()["phones_several_ids"] == 0


def test_permanent_4xx_is_final(
    org: Any, make_client: Any, sender: Any, start_worker: Any, settings: Any
) -> None:
    from core.models import Delivery

    make_client(org)
    start_worker(SENDER_TOKEN="not-a-valid-jwt")  # the simulator answers 401
    mailing = _mailing(org)
    wait_until(lambda: _status(mailing) == "finished", timeout=30)
    delivery = Delivery.objects.get(mailing_message__mailing=mailing)
    assert delivery.status == "failed" and delivery.attempts == 1
    assert "401" in delivery.last_error


def test_killed_worker_is_resumed_by_another_without_duplicate_or_loss(
    org: Any, make_client: Any, sender: Any, start_worker: Any
) -> None:
    from chat.models import Client
    from core.models import Delivery, DeliveryAttempt
    from mailing.jobs import mailing_sweep
    from tests.conftest import kill_with_children

    # given: a slow sender and small batches, so the campaign takes a while
    total = 300
    Client.objects.bulk_create(
        [
            Client(
                organization=org,
                name=f"c{n}",
                phone=f"7903{n:07d}",
                operator_code="903",
                timezone="UTC",
            )
            for n in range(total)
        ]
    )
    sender.control(latency_ms=150)
    first = start_worker(MAILING_BATCH_SIZE="20", MAILING_LANES="1", MAILING_CONCURRENCY="20")
    mailing = _mailing(org)
    deliveries = Delivery.objects.filter(mailing_message__mailing=mailing)
    # when: the worker *and its work horse* are killed mid-campaign, a batch in flight
    wait_until(lambda: 20 <= sender.stats()["accepted_total"] < total - 100, timeout=30)
    kill_with_children(first)
    killed_at = timezone.now()
    # Nothing of the first worker survives: what it left is frozen from here on.
    sent_by_first = deliveries.filter(status="sent").count()
    abandoned = set(deliveries.filter(status="sending").values_list("pk", flat=True))
    # the tries under way when it died: written `in_flight` with the claim
    in_flight = set(
        DeliveryAttempt.objects.filter(delivery__in=abandoned, outcome="in_flight").values_list(
            "delivery_id", "number"
        )
    )
    assert sent_by_first < total
    start_worker(MAILING_BATCH_SIZE="50", MAILING_LANES="1")

    # then: the sweeper (cron) reclaims the abandoned rows and the lane resumes
    reclaimed = 0

    def done() -> bool:
        nonlocal reclaimed
        reclaimed += mailing_sweep()["reclaimed"]
        return _status(mailing) == "finished"

    wait_until(done, timeout=90, interval=0.5)
    counts = _counts(mailing)
    assert counts["sent"] == total
    # The recovery path really ran: the second worker sent the rest, including every
    # row the killed horse left `sending` (claimed again: a second attempt number).
    assert deliveries.filter(sent_at__gt=killed_at).count() == total - sent_by_first > 0
    assert abandoned, "the kill did not catch a batch in flight"
    assert reclaimed >= len(abandoned)
    assert deliveries.filter(pk__in=abandoned, status="sent", attempts__gte=2).count() == len(
        abandoned
    )
    assert DeliveryAttempt.objects.filter(delivery__in=abandoned, number__gte=2).count() == len(
        abandoned
    )
    # each try the kill interrupted is recorded, as lost (the sweeper's reclaim), and no
    # try of the mailing is left without an outcome
    assert {d for d, _ in in_flight} == abandoned
    lost = DeliveryAttempt.objects.filter(delivery__in=abandoned, outcome="lost")
    assert set(lost.values_list("delivery_id", "number")) == in_flight
    assert not DeliveryAttempt.objects.filter(delivery__in=deliveries, outcome="in_flight").exists()
    stats = sender.stats()
    assert stats["phones"] == total  # no loss
    assert stats["phones_several_ids"] == 0  # no second msgId for a client
