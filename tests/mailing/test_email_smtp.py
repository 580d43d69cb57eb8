"""The email channel adapter against a real SMTP server on loopback: one connection for
many messages, reopened after a failure, and each SMTP answer classified once."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.mail import EmailMessage

from core.outbox.email import EmailConnection
from tests.conftest import free_port
from tests.mailing.smtpsink import SinkHandler, SmtpSink


@pytest.fixture
def smtp(settings: Any) -> Any:
    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 5
    with SmtpSink(port) as handler:
        yield handler


def _message(to: str, n: int = 0) -> EmailMessage:
    return EmailMessage(
        subject=f"s{n}", body="b", to=[to], headers={"Message-ID": f"<m{n}-{to}@test>"}
    )


def test_one_connection_carries_many_messages(smtp: SinkHandler) -> None:
    connection = EmailConnection()
    try:
        results = [connection.send(_message(f"a{n}@example.test", n)) for n in range(5)]
    finally:
        connection.close()
    assert [r.outcome for r in results] == ["ok"] * 5
    assert smtp.connections == 1 and connection.opened == 1
    assert len(smtp.received) == 5


@pytest.mark.parametrize(
    ("fault", "outcome", "code", "lost"),
    [
        ("421", "transient", 421, False),
        ("451", "transient", 451, False),
        ("550", "permanent", 550, False),
        ("drop", "transient", None, True),
    ],
)
def test_each_answer_is_classified_and_the_next_message_gets_a_fresh_connection(
    smtp: SinkHandler, fault: str, outcome: str, code: int | None, lost: bool
) -> None:
    smtp.fail("bad@example.test", fault)
    connection = EmailConnection()
    try:
        failed = connection.send(_message("bad@example.test"))
        after = connection.send(_message("good@example.test", 1))
    finally:
        connection.close()
    assert (failed.outcome, failed.status_code, failed.answer_lost) == (outcome, code, lost)
    assert after.outcome == "ok"
    assert smtp.to("bad@example.test") == [] and len(smtp.to("good@example.test")) == 1
    assert connection.opened == 2  # closed after the failure, reopened for the next


def test_a_refused_connection_is_transient_and_not_a_lost_answer(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    result = EmailConnection().send(_message("a@example.test"))
    assert (result.outcome, result.answer_lost) == ("transient", False)
    assert "ConnectionRefused" in result.error
