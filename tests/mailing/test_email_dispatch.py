"""Email as a mailing transport, end to end: a real RQ worker sends through a real SMTP
server on loopback (aiosmtpd, tests/mailing/smtpsink.py) that fails on cue (421, 451, a
dropped connection); the SMS fallback goes to the sender simulator over HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.conftest import free_port, wait_until
from tests.mailing.smtpsink import SinkHandler, SmtpSink

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def smtp() -> Any:
    with SmtpSink(free_port()) as handler:
        yield handler


def _smtp_env(port: int, **extra: str) -> dict[str, str]:
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "EMAIL_TIMEOUT": "5",
        "SENDER_BACKOFF_BASE": "0.2",
        "SENDER_BACKOFF_MAX": "1",
        "MAILING_EMAIL_CONNECTIONS": "2",
        **extra,
    }


def _client(make_client: Any, org: Any, *, email: str, phone: bool = True, **fields: Any) -> Any:
    from chat.models import Client

    client = make_client(org, **fields)
    Client.objects.filter(pk=client.pk).update(email=email, **({} if phone else {"phone": ""}))
    client.refresh_from_db()
    return client


def _template(org: Any, **fields: Any) -> Any:
    from mailing.services import template_create

    fields.setdefault("title", "Sale")
    fields.setdefault("code", "sale")
    fields.setdefault("transport", "email")
    fields.setdefault("subject", "Hi {{ name }}, {{ discount }} off")
    fields.setdefault("body", "Dear {{ name }}, {{ discount }} off today.")
    fields.setdefault("html_body", "<p>Dear <b>{{ name }}</b>, {{ discount }} off.</p>")
    fields.setdefault("variables", ["discount"])
    return template_create(organization=org, **fields)


def _worker_ready() -> bool:
    from rq import Worker

    from core.redis import get_redis

    return Worker.count(connection=get_redis()) > 0


def _finished(mailing: Any) -> bool:
    mailing.refresh_from_db()
    return mailing.status == "finished"


def test_promo_email_mailing_each_client_once_through_smtp_failures(
    org: Any, make_client: Any, sender: Any, smtp: SinkHandler, start_worker: Any
) -> None:
    from core.models import Delivery, DeliveryAttempt
    from mailing.models import MailingMessage
    from mailing.selectors import mailing_stats
    from mailing.services import mailing_create
    from mailing.unsubscribe import unsubscribe_client_id

    # given: email clients (one with markup in its name, one without a phone), SMS-only
    # clients (the fallback), one reachable by neither, one whose address bounced; the
    # SMTP server answers 421, 451 and drops the connection for some addresses once
    emails = [
        _client(make_client, org, email=f"c{i}@example.test", name=f"Client {i}") for i in range(6)
    ]
    emails.append(_client(make_client, org, email="x@example.test", name="<script>x</script>"))
    emails.append(_client(make_client, org, email="nophone@example.test", phone=False))
    sms_only = [make_client(org) for _ in range(2)]
    _client(make_client, org, email="", phone=False)  # no address at all
    _client(make_client, org, email="bounced@example.test", phone=False)
    from chat.models import Client

    Client.objects.filter(email="bounced@example.test").update(email_undeliverable=True)
    smtp.fail("c0@example.test", "421")
    smtp.fail("c1@example.test", "451", "451")
    smtp.fail("c2@example.test", "drop")
    start_worker(**_smtp_env(smtp.port, MAILING_BATCH_SIZE="4"))
    # when
    now = timezone.now()
    mailing = mailing_create(
        organization=org,
        start_at=now,
        end_at=now + timedelta(minutes=5),
        template=_template(org),
        context={"discount": "10%"},
        transports=["email", "sms"],
        promo=True,
    )
    # then
    wait_until(lambda: _finished(mailing), timeout=40)
    stats = mailing_stats(mailing=mailing)
    assert stats["counts"]["sent"] == len(emails) + len(sms_only)
    assert stats["by_transport"] == {"email": len(emails), "sms": len(sms_only)}
    assert stats["skipped"] == {"no_address": 1, "undeliverable": 1, "opted_out": 0, "total": 2}
    for client in emails:
        got = smtp.to(client.email)
        assert len(got) == 1, client.email
        message = got[0]
        message_id = MailingMessage.objects.get(mailing=mailing, client=client).pk
        assert smtp.accepted[message["Message-ID"]] == 1
        assert f"mailing-message-{message_id}@" in message["Message-ID"]
        assert message["Subject"] == f"Hi {client.name}, 10% off"
        # RFC 8058: the client's signed link, and the one-click marker
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = str(message["List-Unsubscribe"]).strip().strip("<>")  # may be folded
        assert link.startswith("http") and "/u/" in link
        assert unsubscribe_client_id(link.rstrip("/").rsplit("/", 1)[1]) == client.pk
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert f"Dear {client.name}, 10% off today." in text
        if client.name.startswith("<script>"):
            assert "<script>" not in html and "&lt;script&gt;" in html
    for client in sms_only:
        message_id = MailingMessage.objects.get(mailing=mailing, client=client).pk
        assert sender.accepted(message_id) == 1
    # the failures were attempts of their own, each recorded
    faulty = {"c0@example.test": 2, "c1@example.test": 3, "c2@example.test": 2}
    for address, tries in faulty.items():
        delivery = Delivery.objects.get(
            mailing_message__mailing=mailing, mailing_message__address=address
        )
        assert delivery.attempts == tries
        outcomes = list(
            DeliveryAttempt.objects.filter(delivery=delivery)
            .order_by("number")
            .values_list("outcome", flat=True)
        )
        assert outcomes == ["transient"] * (tries - 1) + ["ok"]
    # one connection carried several messages (reused, not one per message)
    assert smtp.connections < len(emails) + 3


def test_end_time_passing_expires_what_the_server_keeps_refusing(
    org: Any, make_client: Any, smtp: SinkHandler, start_worker: Any
) -> None:
    from core.models import Delivery, DeliveryAttempt
    from mailing.services import mailing_create

    # given: one address the server answers 451 for as long as the mailing lasts
    ok = _client(make_client, org, email="ok@example.test")
    _client(make_client, org, email="stuck@example.test")
    smtp.fail("stuck@example.test", *["451"] * 1000)
    start_worker(**_smtp_env(smtp.port))
    wait_until(_worker_ready, timeout=30)  # the mailing's 6 s must not go by in its start-up
    now = timezone.now()
    mailing = mailing_create(
        organization=org,
        start_at=now,
        end_at=now + timedelta(seconds=6),
        template=_template(org),
        context={"discount": "5%"},
        transports=["email"],
    )
    # when the end time has passed
    wait_until(lambda: _finished(mailing), timeout=40)
    # then: the working address got its message once, the refused one nothing and its
    # message expired after several tries, none of which started in the end guard
    assert [m["To"] for m in smtp.to(ok.email)] == [ok.email]
    assert smtp.to("stuck@example.test") == []
    stuck = Delivery.objects.get(mailing_message__address="stuck@example.test")
    assert stuck.status == "expired" and stuck.attempts >= 2
    last_start = (
        DeliveryAttempt.objects.filter(delivery=stuck).order_by("-number").first().created_at
    )
    assert last_start < mailing.end_at


def test_a_scheduled_email_notification_starts_at_its_send_at(
    org: Any, make_client: Any, agent: Any, smtp: SinkHandler, start_worker: Any
) -> None:
    from mailing.models import Mailing

    client = _client(make_client, org, email="later@example.test")
    template = _template(org, code="later", html_body="")
    start_worker(**_smtp_env(smtp.port))
    send_at = timezone.now() + timedelta(seconds=3)
    response = agent.client().post(
        "/api/notifications/",
        {
            "organization": "acme",
            "template": template.pk,
            "context": {"discount": "1%"},
            "client_ids": [client.pk],
            "transports": ["email"],
            "send_at": send_at.isoformat(),
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    mailing = Mailing.objects.get(pk=response.json()["id"])
    assert mailing.status == "scheduled" and mailing.start_at == send_at
    wait_until(lambda: _finished(mailing), timeout=30)
    # started by the worker's scheduler at its time, not before (the lateness is measured
    # by contrib/bench/mailing_email.py --schedule, not asserted here)
    assert mailing.started_at is not None and mailing.started_at >= send_at
    got = smtp.to(client.email)
    assert len(got) == 1 and "List-Unsubscribe" not in got[0]
