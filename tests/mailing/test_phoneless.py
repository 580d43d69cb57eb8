"""A message to a client without a phone (issue 15): its delivery row stores phone NULL
(not 0), the email still arrives, no SMS is ever tried without a phone, and a client
reachable by neither transport is skipped and counted, never a 500."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.conftest import free_port, wait_until
from tests.mailing.smtpsink import SinkHandler, SmtpSink


@pytest.fixture
def smtp() -> Any:
    with SmtpSink(free_port()) as handler:
        yield handler


def _client(make_client: Any, org: Any, *, email: str) -> Any:
    """A client with `email` (may be blank) and no phone."""
    from chat.models import Client

    client = make_client(org)
    Client.objects.filter(pk=client.pk).update(email=email, phone="", operator_code="")
    client.refresh_from_db()
    return client


def _finished(mailing_id: int) -> bool:
    from mailing.models import Mailing

    return Mailing.objects.get(pk=mailing_id).status == "finished"


@pytest.mark.django_db(transaction=True)
def test_an_email_only_client_gets_its_email_with_no_phone_and_a_client_with_neither_is_skipped(
    org: Any, make_client: Any, agent: Any, staff: Any, smtp: SinkHandler, start_worker: Any
) -> None:
    from core.models import Delivery
    from mailing.services import template_create

    # given: one client with an email and no phone, one with neither
    emailed = _client(make_client, org, email="only-mail@example.test")
    nowhere = _client(make_client, org, email="")
    template = template_create(
        organization=org,
        title="Order",
        code="order",
        transport="email",
        subject="Order {{ order }}",
        body="Hi {{ name }}, order {{ order }} shipped.",
        variables=["order"],
    )
    start_worker(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp.port),
        EMAIL_TIMEOUT="5",
    )
    api = agent.client()
    # when: a notification naming "email, else SMS" goes to both
    response = api.post(
        "/api/notifications/",
        {
            "organization": "acme",
            "template": template.pk,
            "context": {"order": "A-17"},
            "client_ids": [emailed.pk, nowhere.pk],
            "transports": ["email", "sms"],
        },
        format="json",
    )
    # then: accepted, sent by email, the delivery row without a phone (NULL, not 0)
    assert response.status_code == 201, response.content
    mailing_id = response.json()["id"]
    wait_until(lambda: _finished(mailing_id), timeout=30)
    got = smtp.to("only-mail@example.test")
    assert len(got) == 1 and got[0]["Subject"] == "Order A-17"
    delivery = Delivery.objects.get(mailing_message__mailing_id=mailing_id)
    assert delivery.phone is None and delivery.status == "sent"
    assert not Delivery.objects.filter(phone=0).exists()
    # the client with neither address is skipped and counted
    stats = api.get(f"/api/mailings/{mailing_id}/stats/")
    assert stats.status_code == 200, stats.content
    body = stats.json()
    assert body["counts"]["sent"] == 1 and body["counts"]["total"] == 1
    assert body["skipped"]["no_address"] == 1 and body["by_transport"] == {"email": 1, "sms": 0}
    # the API's message and the admin's delivery list show the missing phone
    messages = api.get(f"/api/mailings/{mailing_id}/messages/")
    assert messages.status_code == 200, messages.content
    [message] = messages.json()
    assert message["phone"] is None and message["address"] == "only-mail@example.test"
    assert message["client"] == emailed.pk and message["status"] == "sent"
    assert staff.get("/admin/core/delivery/").status_code == 200
    assert staff.get(f"/admin/core/delivery/{delivery.pk}/change/").status_code == 200
    assert staff.get("/admin/core/delivery/", {"q": "79160000000"}).status_code == 200


@pytest.mark.django_db
def test_a_mailing_whose_only_client_has_no_address_finishes_with_it_skipped(
    org: Any, make_client: Any, agent: Any
) -> None:
    from mailing.models import Mailing
    from mailing.services import mailing_start, template_create

    nowhere = _client(make_client, org, email="")
    template = template_create(
        organization=org,
        title="Hello",
        code="hello",
        transport="email",
        subject="Hello",
        body="Hello {{ name }}",
    )
    api = agent.client()
    now = timezone.now()
    response = api.post(
        "/api/mailings/",
        {
            "organization": "acme",
            "name": "nobody reachable",
            "start_at": now.isoformat(),
            "end_at": (now + timedelta(minutes=5)).isoformat(),
            "template": template.pk,
            "client_ids": [nowhere.pk],
            "transports": ["email", "sms"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    mailing_id = response.json()["id"]
    # when: its start job runs (here, in process)
    mailing_start(mailing_id=mailing_id)
    # then: finished with nothing to send, the client counted as skipped
    assert Mailing.objects.get(pk=mailing_id).status == "finished"
    stats = api.get(f"/api/mailings/{mailing_id}/stats/")
    assert stats.status_code == 200, stats.content
    assert stats.json()["counts"]["total"] == 0
    assert stats.json()["skipped"] == {
        "no_address": 1,
        "undeliverable": 0,
        "opted_out": 0,
        "total": 1,
    }
    messages = api.get(f"/api/mailings/{mailing_id}/messages/")
    assert messages.status_code == 200 and messages.json() == []


class _RecordingSender:
    def __init__(self) -> None:
        self.calls: list[int] = []

    async def send(self, *, msg_id: int, phone: int, text: str) -> Any:
        from core.sender import SendResult

        self.calls.append(msg_id)
        return SendResult("ok", 200, 1)

    async def send_email(self, row: Any) -> Any:
        raise AssertionError("no email in this batch")


def test_an_sms_row_without_a_phone_fails_without_a_call() -> None:
    from core.sender import NO_PHONE_ERROR
    from mailing.dispatch.batch import Row, send_all

    deadline = timezone.now() + timedelta(minutes=5)
    rows = [
        Row(id=1, phone=79160000001, text="a", attempts=1, deadline=deadline, client_id=1, tz=""),
        Row(id=2, phone=None, text="b", attempts=1, deadline=deadline, client_id=2, tz=""),
    ]
    sender = _RecordingSender()
    results = asyncio.run(send_all(sender, rows))
    assert sender.calls == [1]
    assert results[0].outcome == "ok"
    assert results[1].outcome == "permanent" and results[1].error == NO_PHONE_ERROR


def test_send_sync_without_a_phone_makes_no_call(settings: Any) -> None:
    from core.sender import NO_PHONE_ERROR, send_sync

    # a port nobody listens on: a call would be a transient connection error, not this
    settings.SENDER_URL = f"http://127.0.0.1:{free_port()}"
    result = send_sync(msg_id=1, phone=None, text="hi")
    assert result.outcome == "permanent" and result.error == NO_PHONE_ERROR
    assert send_sync(msg_id=1, phone=79160000001, text="hi").outcome == "transient"
