"""Outbound chat messages through a real RQ worker and the sender simulator over HTTP."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from chat.models import Message
from core.models import Delivery, DeliveryAttempt
from tests.conftest import wait_until
from tests.wsclient import WS, data

pytestmark = pytest.mark.django_db(transaction=True)


def _ws(web: Any, agent: Any) -> WS:
    ws = WS(f"{web.ws_url}/ws/chat/{agent.organization.slug}/?token={agent.key}")
    assert ws.recv()["type"] == "hello"
    return ws


def _send(agent: Any, help_desk: Any, text: str, base: str = "") -> Message:
    """Send over real HTTP to `base` (a daphne), or in-process when no server is named."""
    payload = {"help_desk": str(help_desk.uuid), "message": text}
    if base:
        response: Any = agent.http(base).post("/api/send-message/", data=payload)
    else:
        response = agent.client().post("/api/send-message/", payload)
    assert response.status_code == 201, response.content
    return Message.objects.select_related("delivery").get(uuid=response.json()["uuid"])


def _status(message: Message) -> str:
    return Message.objects.get(pk=message.pk).status


def _attempts(message: Message) -> list[DeliveryAttempt]:
    """Attempts with an outcome (the claim writes the row `in_flight` before the call)."""
    assert message.delivery_id is not None
    return list(
        DeliveryAttempt.objects.filter(delivery_id=message.delivery_id).exclude(
            outcome=DeliveryAttempt.Outcome.IN_FLIGHT
        )
    )


def _updates(ws: WS, message: Message, until: str) -> list[str]:
    """Statuses of `update_message` frames for this message, up to status `until`."""
    ws.recv_until(
        lambda f: (
            f["type"] == "update_message"
            and data(f)["uuid"] == str(message.uuid)
            and data(f)["status"] == until
        ),
        timeout=20,
    )
    return [
        data(f)["status"]
        for f in ws.frames
        if f.get("type") == "update_message" and data(f)["uuid"] == str(message.uuid)
    ]


def test_sent_message_goes_sending_to_sent_with_one_accepted_delivery(
    start_web, start_worker, agent, help_desk, sender
):
    # given a web process, a worker and an agent listening
    web = start_web()
    start_worker()
    ws = _ws(web, agent)

    # when the agent sends a message
    message = _send(agent, help_desk, "hello", base=web.url)

    # then it starts `sending`, the worker hands it over once, and it ends `sent`
    new = ws.recv_until(lambda f: f["type"] == "new_message")
    assert data(new)["status"] == "sending"
    assert _updates(ws, message, until="sent") == ["sent"]
    assert _status(message) == "sent"
    assert message.delivery is not None
    assert sender.accepted(message.delivery.pk) == 1
    delivery = Delivery.objects.get(pk=message.delivery.pk)
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    assert [a.outcome for a in _attempts(message)] == ["ok"]
    assert sender.stats()["duplicates"] == 0


def test_sender_failing_then_recovering_ends_sent_with_one_delivery(
    start_worker, agent, help_desk, sender, settings
):
    # given a sender that answers 500, then garbage, then is down (one fault per attempt)
    settings.SENDER_MAX_ATTEMPTS = 20
    sender.control(error_rate=1)
    start_worker()
    message = _send(agent, help_desk, "retry me")
    wait_until(lambda: len(_attempts(message)) >= 1, timeout=20)
    sender.control(error_rate=0, garbage_rate=1)
    wait_until(lambda: len(_attempts(message)) >= 2, timeout=20)
    sender.control(garbage_rate=0, down=True)
    wait_until(lambda: len(_attempts(message)) >= 3, timeout=20)
    assert _status(message) == "sending"
    assert sender.accepted(message.delivery.pk) == 0

    # when the sender recovers
    sender.control(down=False)

    # then the message ends `sent`, accepted exactly once, with every attempt recorded
    wait_until(lambda: _status(message) == "sent", timeout=30)
    assert sender.accepted(message.delivery.pk) == 1
    attempts = _attempts(message)
    assert [a.number for a in attempts] == list(range(1, len(attempts) + 1))
    assert [(a.outcome, a.status_code) for a in attempts[:3]] == [
        ("transient", 500),
        ("transient", 200),  # 200 with a body that is not the documented one
        ("transient", None),  # connection closed without an answer
    ]
    assert "unexpected body" in attempts[1].error
    assert all(a.outcome == "transient" for a in attempts[3:-1])
    assert attempts[-1].outcome == "ok"
    delivery = Delivery.objects.get(pk=message.delivery.pk)
    assert (delivery.status, delivery.attempts) == ("sent", len(attempts))
    assert sender.stats()["duplicates"] == 0


def test_rejected_by_sender_is_final_after_one_attempt(
    start_web, start_worker, agent, help_desk, sender, settings
):
    # given a worker whose sender token is wrong (the sender answers 401)
    settings.SENDER_TOKEN = "not-a-valid-jwt"
    web = start_web()
    start_worker()
    ws = _ws(web, agent)

    # when a message is sent
    message = _send(agent, help_desk, "nope", base=web.url)

    # then it fails after exactly one attempt, and agents see it fail
    assert _updates(ws, message, until="failed") == ["failed"]
    [attempt] = _attempts(message)
    assert (attempt.outcome, attempt.status_code) == ("permanent", 401)
    delivery = Delivery.objects.get(pk=message.delivery.pk)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert sender.stats()["accepted_total"] == 0


def test_retry_after_failure_sends_once_with_a_new_msg_id(
    start_worker, agent, help_desk, sender, settings
):
    # given a message that failed for good
    settings.SENDER_MAX_ATTEMPTS = 1
    sender.control(error_rate=1)
    start_worker()
    message = _send(agent, help_desk, "again")
    wait_until(lambda: _status(message) == "failed", timeout=20)
    first_delivery = message.delivery_id

    # when the sender is back and the agent retries
    sender.control(error_rate=0)
    response = agent.client().post(f"/api/messages/{message.uuid}/retry/")
    assert response.status_code == 200, response.content

    # then the new chain is sent once
    wait_until(lambda: _status(message) == "sent", timeout=20)
    message.refresh_from_db()
    assert message.delivery_id != first_delivery
    assert sender.accepted(message.delivery_id) == 1
    assert sender.accepted(first_delivery) == 0


def test_sender_always_failing_ends_failed_after_retries_with_backoff(
    start_web, start_worker, agent, help_desk, sender, settings
):
    # given a sender that always answers 500, three attempts, a short backoff
    settings.SENDER_MAX_ATTEMPTS = 3
    settings.SENDER_BACKOFF_BASE = 0.4
    sender.control(error_rate=1)
    web = start_web()
    start_worker()
    ws = _ws(web, agent)

    # when a message is sent
    message = _send(agent, help_desk, "doomed", base=web.url)

    # then it is retried, then `failed`; agents see sending -> failed, nothing in between
    assert _updates(ws, message, until="failed") == ["failed"]
    attempts = _attempts(message)
    assert [(a.number, a.outcome, a.status_code) for a in attempts] == [
        (1, "transient", 500),
        (2, "transient", 500),
        (3, "transient", 500),
    ]
    delivery = Delivery.objects.get(pk=message.delivery_id)
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    # with backoff: "equal jitter" waits at least half the exponential step (0.2 s, 0.4 s)
    gaps = [(b.created_at - a.created_at).total_seconds() for a, b in pairwise(attempts)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4, gaps
    # and the help desk's nested last message says failed too
    desk = ws.recv_until(
        lambda f: f["type"] == "update_helpdesk" and data(f)["last_message"]["status"] == "failed"
    )
    assert data(desk)["last_message"]["uuid"] == str(message.uuid)


def test_a_duplicated_deliver_job_sends_once(agent, help_desk, sender):
    from chat.services import message_deliver

    # given a message whose delivery job was enqueued twice (e.g. by the sweeper)
    message = _send(agent, help_desk, "twice")

    # when both copies run
    message_deliver(message_id=message.pk)
    message_deliver(message_id=message.pk)

    # then the sender saw one call, and the message is sent once
    assert sender.accepted(message.delivery_id) == 1
    assert sender.stats()["requests"] == 1
    assert [a.outcome for a in _attempts(message)] == ["ok"]
    assert _status(message) == "sent"
