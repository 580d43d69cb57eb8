"""Faults of one transport stay in that transport (issue 15).

- One circuit breaker per transport: an SMTP server answering 421 to everything opens
  the email breaker, and an SMS mailing still goes out through the simulator meanwhile
  (end to end: a real RQ worker, a real SMTP server on loopback, the simulator over HTTP).
- A bounce that arrives after a message was created stops that message: the address is
  checked again when the message is claimed for sending (database level: the claim).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.conftest import free_port, wait_until
from tests.mailing.smtpsink import SinkHandler, SmtpSink


@pytest.fixture
def smtp() -> Iterator[SinkHandler]:
    with SmtpSink(free_port()) as handler:
        yield handler


@pytest.fixture
def _breakers_closed(redis_client: Any) -> Iterator[None]:
    from mailing.dispatch import BREAKER_KEYS

    redis_client.delete(*BREAKER_KEYS)
    yield
    redis_client.delete(*BREAKER_KEYS)


def _email_client(make_client: Any, org: Any, address: str) -> Any:
    from chat.models import Client

    client = make_client(org)
    Client.objects.filter(pk=client.pk).update(email=address)
    client.refresh_from_db()
    return client


def _email_template(org: Any) -> Any:
    from mailing.services import template_create

    return template_create(
        organization=org,
        title="News",
        code="news",
        transport="email",
        subject="News for {{ name }}",
        body="Hello {{ name }}.",
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
@pytest.mark.usefixtures("_breakers_closed")
def test_an_smtp_outage_does_not_stop_an_sms_mailing(
    org: Any, make_client: Any, sender: Any, smtp: SinkHandler, start_worker: Any
) -> None:
    from core.models import Delivery
    from mailing.dispatch import breaker_state
    from mailing.models import Mailing
    from mailing.services import mailing_create

    # given: the SMTP server answers 421 to every message, and a tripped breaker stays
    # open 30-60 s (far longer than the SMS mailing needs)
    emails = [_email_client(make_client, org, f"down{i}@example.test") for i in range(6)]
    for client in emails:
        smtp.fail(client.email, *["421"] * 1000)
    start_worker(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp.port),
        EMAIL_TIMEOUT="5",
        SENDER_BACKOFF_BASE="60",
        SENDER_BACKOFF_MAX="60",
    )
    now = timezone.now()
    email_mailing = mailing_create(
        organization=org,
        start_at=now,
        end_at=now + timedelta(minutes=10),
        template=_email_template(org),
        client_ids=[c.pk for c in emails],
        transports=["email"],
    )
    wait_until(lambda: breaker_state("email").trips >= 1, timeout=40)

    # when an SMS mailing starts while the email breaker is open
    sms_clients = [make_client(org) for _ in range(8)]
    sms_mailing = mailing_create(
        organization=org,
        start_at=timezone.now(),
        end_at=timezone.now() + timedelta(minutes=10),
        text="Hi {{ name }}",
        client_ids=[c.pk for c in sms_clients],
        transports=["sms"],
    )

    # then it is delivered, each message once, while the email one still waits
    def finished() -> bool:
        sms_mailing.refresh_from_db()
        return sms_mailing.status == Mailing.Status.FINISHED

    wait_until(finished, timeout=40)
    assert breaker_state("sms").trips == 0
    assert breaker_state("email").trips >= 1
    sms_rows = Delivery.objects.filter(mailing_message__mailing=sms_mailing)
    assert sorted(sms_rows.values_list("status", flat=True)) == ["sent"] * len(sms_clients)
    for pk in sms_rows.values_list("pk", flat=True):
        assert sender.accepted(pk) == 1
    email_rows = Delivery.objects.filter(mailing_message__mailing=email_mailing)
    assert set(email_rows.values_list("status", flat=True)) == {"pending"}
    assert sum(smtp.accepted.values()) == 0


@pytest.mark.django_db
@pytest.mark.usefixtures("_breakers_closed")
def test_a_batch_trips_only_the_breaker_of_the_transport_that_failed(
    org: Any, make_client: Any, settings: Any
) -> None:
    from core.models import Delivery
    from core.sender import SendResult
    from mailing.dispatch import breaker_state, breaker_states, claim, record
    from mailing.services import mailing_create, mailing_start

    settings.MAILING_BREAKER_MIN_FAILURES = 2
    # given a mailing of email (preferred) and SMS clients: one batch holds both
    for i in range(2):
        _email_client(make_client, org, f"both{i}@example.test")
    for _ in range(2):
        make_client(org)
    now = timezone.now()
    mailing = mailing_create(
        organization=org,
        start_at=now,
        end_at=now + timedelta(hours=1),
        template=_email_template(org),
        transports=["email", "sms"],
    )
    mailing_start(mailing_id=mailing.pk)
    rows = claim(mailing_id=mailing.pk, token="A", size=10, now=timezone.now())
    assert sorted(r.transport for r in rows) == ["email", "email", "sms", "sms"]

    # when every email fails transiently and every SMS goes through
    transient = SendResult("transient", None, 5, "421 try later")
    results = [transient if r.transport == "email" else SendResult("ok", 200, 5) for r in rows]
    outcome = record(
        mailing_id=mailing.pk, rows=rows, results=results, token="A", breakers=breaker_states()
    )

    # then only the email breaker trips, only the email messages are refunded
    assert outcome.tripped and (outcome.sent, outcome.retry) == (2, 2)
    assert breaker_state("email").trips == 1 and breaker_state("sms").trips == 0
    by_transport = {
        t: list(
            Delivery.objects.filter(mailing_message__mailing=mailing, mailing_message__transport=t)
            .order_by("pk")
            .values_list("status", "attempts")
        )
        for t in ("email", "sms")
    }
    assert by_transport == {"email": [("pending", 0)] * 2, "sms": [("sent", 1)] * 2}
    # and the next claim, made with the email breaker open, takes no email message
    Delivery.objects.filter(mailing_message__mailing=mailing).update(next_attempt_at=None)
    again = claim(mailing_id=mailing.pk, token="B", size=10, now=timezone.now(), transports=["sms"])
    assert again == []


@pytest.mark.django_db
@pytest.mark.parametrize("promo", [False, True])
def test_an_address_bounced_after_its_message_was_created_is_not_sent_to(
    org: Any, make_client: Any, promo: bool
) -> None:
    from core.models import Delivery, DeliveryAttempt
    from mailing.dispatch import claim
    from mailing.dispatch.batch import UNDELIVERABLE_ERROR
    from mailing.selectors import mailing_stats
    from mailing.services import mailing_create, mailing_start
    from mailing.services.contacts import clients_email_bounced

    # given a running email mailing whose messages exist
    keep = _email_client(make_client, org, "keep@example.test")
    gone = _email_client(make_client, org, "gone@example.test")
    now = timezone.now()
    mailing = mailing_create(
        organization=org,
        start_at=now,
        end_at=now + timedelta(hours=1),
        template=_email_template(org),
        transports=["email"],
        promo=promo,
    )
    mailing_start(mailing_id=mailing.pk)
    assert Delivery.objects.filter(mailing_message__mailing=mailing).count() == 2

    # when the provider reports a bounce for one address before its message is sent
    assert clients_email_bounced(organization=org, addresses=["GONE@example.test"], kind="bounce")

    # then the claim takes only the other message; the bounced one ends failed, with no
    # attempt, and is counted as skipped (undeliverable)
    rows = claim(mailing_id=mailing.pk, token="A", size=10, now=timezone.now(), promo=promo)
    assert [r.client_id for r in rows] == [keep.pk]
    bounced = Delivery.objects.get(mailing_message__mailing=mailing, mailing_message__client=gone)
    assert (bounced.status, bounced.last_error, bounced.attempts) == (
        "failed",
        UNDELIVERABLE_ERROR,
        0,
    )
    assert not DeliveryAttempt.objects.filter(delivery=bounced).exists()
    stats = mailing_stats(mailing=mailing)
    assert stats["skipped"]["undeliverable"] == 1
    assert stats["counts"]["failed"] == 1
