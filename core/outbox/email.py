"""The email channel adapter: one message handed to Django's email backend, as a
`SendResult`. Any backend error is transient (retried as the decision says): an SMTP
server's refusal cannot be told from its outage here."""

from __future__ import annotations

import time

from django.core.mail import send_mail

from core.sender import SendResult


def email_send(*, subject: str, body: str, address: str) -> SendResult:
    start = time.perf_counter()
    try:
        send_mail(subject, body, None, [address], fail_silently=False)
    except Exception as exc:  # any backend error is recorded and retried
        duration = int((time.perf_counter() - start) * 1000)
        return SendResult("transient", None, duration, f"{type(exc).__name__}: {exc}"[:500])
    return SendResult("ok", None, int((time.perf_counter() - start) * 1000))
