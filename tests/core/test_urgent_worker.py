"""The Procfile's `urgent` worker (`run_worker --queues urgent`, issue 15: send_at within a
second under a running campaign): it serves chat, escalation and mailing_high only, so a
notification due while every `worker` is busy with a campaign's batch is started and sent
by it, and campaign work is never taken by it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError
from django.utils import timezone

from tests.conftest import ROOT, Process, subprocess_env, wait_until


def test_queue_sets_and_bad_names() -> None:
    from core.jobs import (
        ALL_QUEUES,
        QUEUE_CHAT,
        QUEUE_DEFAULT,
        QUEUE_ESCALATION,
        QUEUE_MAILING,
        QUEUE_MAILING_HIGH,
    )
    from core.management.commands.run_worker import queue_names

    assert queue_names("all") == ALL_QUEUES
    assert queue_names("urgent") == (QUEUE_CHAT, QUEUE_ESCALATION, QUEUE_MAILING_HIGH)
    assert QUEUE_MAILING not in queue_names("urgent")
    assert QUEUE_DEFAULT not in queue_names("urgent")
    assert queue_names(" mailing_high, chat,chat") == (QUEUE_MAILING_HIGH, QUEUE_CHAT)
    for bad in ("", ",", "mailing,nope", "URGENT"):
        with pytest.raises(CommandError, match="--queues"):
            queue_names(bad)


def test_the_procfile_runs_an_urgent_worker_supervised() -> None:
    lines = (ROOT / "Procfile").read_text().splitlines()
    assert "worker: python manage.py supervise run_worker" in lines
    assert "urgent: python manage.py supervise run_worker --queues urgent" in lines
    deploy = (ROOT / "contrib" / "deploy" / "Procfile.worker").read_text()
    assert "urgent: .venv/bin/python manage.py supervise run_worker --queues urgent" in deploy
    unit = ROOT / "contrib" / "deploy" / "systemd" / "platform-urgent@.service"
    assert "run_worker --queues urgent" in unit.read_text()


@pytest.mark.django_db(transaction=True)
def test_an_urgent_worker_starting_first_frees_a_dead_schedulers_locks_on_every_queue(
    redis_client: Any,
) -> None:
    """A worker that died with Redis gone leaves its scheduler lock on every queue. The
    `urgent` worker, which serves three of them, may start before the `worker`: it must
    release the dead holder's lock on all five (it deletes the holder's metadata, after
    which the `worker` could not prove the `mailing` lock dead for the lock's 61 s)."""
    import socket
    from datetime import UTC, datetime

    from rq.scheduler import RQScheduler

    from core.jobs import ALL_QUEUES, URGENT_QUEUES

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for queue in ALL_QUEUES:
        redis_client.set(RQScheduler.get_locking_key(queue), "deadbeef", ex=61)
    redis_client.hset(
        "rq:scheduler:deadbeef",
        mapping={
            "name": "deadbeef",
            "hostname": socket.gethostname(),
            "pid": dead.stdout.strip(),
            "queues": ",".join(ALL_QUEUES),
            "created_at": stamp,
            "last_heartbeat": stamp,
        },
    )
    urgent = _worker("--queues", "urgent")
    try:

        def holders() -> dict[str, bytes | None]:
            return {q: redis_client.get(RQScheduler.get_locking_key(q)) for q in ALL_QUEUES}

        # then: no queue is left to the dead holder, and the urgent worker's scheduler
        # holds its own queues only
        def freed() -> bool:
            return all(holder != b"deadbeef" for holder in holders().values())

        wait_until(freed, timeout=20)
        wait_until(
            lambda: {q for q, h in holders().items() if h is not None} == set(URGENT_QUEUES),
            timeout=20,
        )
    finally:
        urgent.stop()
        for queue in ALL_QUEUES:
            redis_client.delete(RQScheduler.get_locking_key(queue))


def _worker(*args: str) -> Process:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_worker", *args], cwd=ROOT, env=subprocess_env()
    )
    return Process(process=process)


def _urgent_worker_idle() -> bool:
    from rq import Worker

    from core.jobs import QUEUE_MAILING, QUEUE_MAILING_HIGH
    from core.redis import get_redis

    for worker in Worker.all(connection=get_redis()):
        names = worker.queue_names()
        if QUEUE_MAILING_HIGH in names and QUEUE_MAILING not in names:
            return bool(worker.get_state() == "idle")
    return False


@pytest.mark.django_db(transaction=True)
def test_a_notification_due_while_the_worker_is_busy_is_sent_by_the_urgent_worker(
    org: Any, make_client: Any, sender: Any, redis_client: Any
) -> None:
    from core.jobs import ALL_QUEUES, QUEUE_MAILING, get_queue
    from core.models import Delivery
    from mailing.models import Mailing
    from mailing.services import mailing_create, notification_send

    campaign_clients = [make_client(org, tag="campaign") for _ in range(3)]
    target = make_client(org)
    for name in ALL_QUEUES:  # what earlier tests left queued (no worker ran it)
        get_queue(name).empty()
    key = f"hold:{uuid.uuid4().hex}"
    workers = [_worker(), _worker("--queues", "urgent")]
    try:
        # given: the `worker` process busy with a long job on the campaign queue (it stands
        # for a campaign's batch in flight)
        get_queue(QUEUE_MAILING).enqueue("tests.core.holding_job.hold", key)
        wait_until(lambda: redis_client.exists(f"{key}:started"), timeout=30)
        # when: a campaign is created (its start job queued on `mailing`), then a
        # notification due in 2 s (started by a scheduler on `mailing_high`)
        now = timezone.now()
        campaign = mailing_create(
            organization=org,
            start_at=now,
            end_at=now + timedelta(minutes=10),
            text="Campaign for {{ name }}",
            tags=["campaign"],
            priority=5,
        )
        send_at = timezone.now() + timedelta(seconds=2)
        notification = notification_send(
            organization=org, text="Code for {{ name }}", client_ids=[target.pk], send_at=send_at
        )

        # then: the notification is started at its time and sent while the job still holds
        # the `worker` (nothing released it yet)
        def sent() -> Delivery | None:
            return Delivery.objects.filter(
                mailing_message__mailing=notification, status="sent"
            ).first()

        delivery = wait_until(sent, timeout=30)
        assert not redis_client.exists(f"{key}:release")
        notification.refresh_from_db()
        assert notification.started_at is not None and notification.started_at >= send_at
        assert sender.accepted(delivery.pk) == 1
        # and the campaign's start job is still queued, with the urgent worker idle: it
        # does not serve the campaign queue
        wait_until(_urgent_worker_idle, timeout=10)
        campaign.refresh_from_db()
        assert campaign.status == Mailing.Status.SCHEDULED
        assert get_queue(QUEUE_MAILING).count == 1
        # when the `worker` is free again, the campaign goes out as usual
        redis_client.set(f"{key}:release", 1, ex=300)

        def campaign_finished() -> bool:
            campaign.refresh_from_db()
            return campaign.status == Mailing.Status.FINISHED

        wait_until(campaign_finished, timeout=60)
        for client in campaign_clients:
            message = Delivery.objects.get(
                mailing_message__mailing=campaign, mailing_message__client=client
            )
            assert message.status == "sent" and sender.accepted(message.pk) == 1
    finally:
        redis_client.set(f"{key}:release", 1, ex=300)
        for worker in workers:
            worker.stop()
