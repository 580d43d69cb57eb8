"""The email channel adapter: messages handed to Django's email backend, as `SendResult`s.

Two entry points:

- `email_send`: one message, one connection (incident emails: a few per incident);
- `EmailConnection`: one backend connection reused for many messages (mailings), opened on
  first use and again after any failure (an SMTP server that answered 421 or dropped the
  connection has closed it; a fresh one is cheaper than guessing its state).

Every SMTP answer is classified once, here (`smtp_result`): a 4xx reply (421 service not
available, 450/451/452 try later) is `transient`, a 5xx reply (550 no such user) is
`permanent`; a connection refused or timed out before any command is `transient` (nothing
sent); a connection dropped during the conversation is `transient` with `answer_lost`
(the server may have taken the message before it went away), so
`SENDER_RETRY_ON_LOST_ANSWER` decides it as it does for the sender API. The message's
`Message-ID` is the same on every try, so a receiver can tell a resend.
"""

from __future__ import annotations

import contextlib
import smtplib
import time
from typing import Any

from django.core.mail import EmailMessage, get_connection, send_mail

from core.sender import Outcome, SendResult


def _elapsed(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)


def _reply(code: int, text: Any, start: float) -> SendResult:
    detail = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    outcome: Outcome = "permanent" if 500 <= code < 600 else "transient"
    return SendResult(outcome, code, _elapsed(start), f"SMTP {code}: {detail}"[:500])


def smtp_result(exc: BaseException, start: float) -> SendResult:
    """The outcome of a send that raised (smtplib or socket errors)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # One recipient per message: its reply is the message's.
        code, text = next(iter(exc.recipients.values()), (451, b"refused"))
        return _reply(int(code), text, start)
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply(int(exc.smtp_code), exc.smtp_error, start)
    error = f"{type(exc).__name__}: {exc}"[:500]
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SendResult("transient", None, _elapsed(start), error, answer_lost=True)
    # Refused, unreachable, timed out on connect, any other backend error: nothing
    # was accepted; retried as the decision says.
    return SendResult("transient", None, _elapsed(start), error)


class EmailConnection:
    """One connection of the configured backend, reused across messages. Not thread-safe:
    one per thread."""

    def __init__(self) -> None:
        self.backend: Any = get_connection(fail_silently=False)
        self.open = False
        self.opened = 0  # connections opened, for tests and the benchmark

    def send(self, message: EmailMessage) -> SendResult:
        start = time.perf_counter()
        try:
            if not self.open:
                self.backend.open()
                self.open = True
                self.opened += 1
            sent = self.backend.send_messages([message])
        except Exception as exc:  # classified: every error is an attempt's outcome
            self.close()
            return smtp_result(exc, start)
        if not sent:  # a backend that gave up silently
            self.close()
            return SendResult("transient", None, _elapsed(start), "not sent by the backend")
        return SendResult("ok", 250, _elapsed(start))

    def close(self) -> None:
        if not self.open:
            return
        self.open = False
        with contextlib.suppress(Exception):  # a connection the server already dropped
            self.backend.close()


def email_send(*, subject: str, body: str, address: str) -> SendResult:
    start = time.perf_counter()
    try:
        send_mail(subject, body, None, [address], fail_silently=False)
    except Exception as exc:  # classified: every error is an attempt's outcome
        return smtp_result(exc, start)
    return SendResult("ok", None, _elapsed(start))
