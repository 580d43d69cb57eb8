"""Email as a mailing transport: the lane's email messages, sent over reused SMTP connections.

A lane claims, records and retries email messages exactly as SMS ones (the same
delivery rows, claim token, attempt rows, `retry_decision`, end guard, windows); only the
call differs. `Transports` is the lane's sender: SMS rows go to the sender API's pool,
email rows to an `EmailPool`, created on the first email row, of
`MAILING_EMAIL_CONNECTIONS` threads, each owning one backend connection
(`core.outbox.email.EmailConnection`) reused for every message it sends. SMTP is
synchronous; the threads let a batch's messages go out side by side while the lane's
own thread records the previous batch.

What a message carries (`email_message`): the subject, the text part (the delivery's
text), the HTML part if the template has one, a `Message-ID` made from the message id
(the same on every try: a resend after a lost answer is recognisable), and, for a
promotional mailing only, RFC 8058's `List-Unsubscribe` (the client's signed link) and
`List-Unsubscribe-Post: List-Unsubscribe=One-Click`. Transactional mail carries neither.
"""

from __future__ import annotations

import asyncio
import dataclasses
import queue
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from core.outbox.email import EmailConnection
from core.sender import SendResult
from mailing.models import MailingMessage, Transport
from mailing.unsubscribe import unsubscribe_url


@dataclasses.dataclass(frozen=True)
class EmailParts:
    address: str
    subject: str
    html: str
    promo: bool


RowT = TypeVar("RowT")


def with_email_parts(rows: list[RowT]) -> list[RowT]:
    """The claimed rows, email ones with their address, subject, HTML part and promo flag
    (one query, only when the batch has email rows)."""
    ids = [r.id for r in rows if getattr(r, "transport", "") == Transport.EMAIL]  # type: ignore[attr-defined]
    if not ids:
        return rows
    parts = {
        pk: EmailParts(address, subject, html, promo)
        for pk, address, subject, html, promo in MailingMessage.objects.filter(
            pk__in=ids
        ).values_list("pk", "address", "subject", "html", "mailing__promo")
    }
    return [
        dataclasses.replace(r, email=parts[r.id]) if r.id in parts else r  # type: ignore[attr-defined,type-var]
        for r in rows
    ]


def _message_id_domain() -> str:
    sender = settings.DEFAULT_FROM_EMAIL.rsplit("<", 1)[-1].rstrip(">")
    return sender.rsplit("@", 1)[-1] or "localhost"


def email_message(*, message_id: int, client_id: int | None, text: str, parts: EmailParts) -> Any:
    headers = {
        "Message-ID": f"<mailing-message-{message_id}@{_message_id_domain()}>",
        "X-Mailing-Message-Id": str(message_id),
    }
    if parts.promo and client_id is not None:
        headers["List-Unsubscribe"] = f"<{unsubscribe_url(client_id)}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message = EmailMultiAlternatives(
        subject=parts.subject, body=text, to=[parts.address], headers=headers
    )
    if parts.html:
        message.attach_alternative(parts.html, "text/html")
    return message


class EmailPool:
    """`connections` threads, each with its own reused backend connection."""

    def __init__(self, connections: int) -> None:
        self.executor = ThreadPoolExecutor(max(1, connections), thread_name_prefix="smtp")
        self.idle: queue.SimpleQueue[EmailConnection] = queue.SimpleQueue()
        self.all = [EmailConnection() for _ in range(max(1, connections))]
        for connection in self.all:
            self.idle.put(connection)

    def _send(self, row: Any) -> SendResult:
        connection = self.idle.get()
        try:
            if row.email is None:  # its message row is gone (a deleted mailing)
                return SendResult("permanent", None, 0, "email message not found")
            return connection.send(
                email_message(
                    message_id=row.id, client_id=row.client_id, text=row.text, parts=row.email
                )
            )
        finally:
            self.idle.put(connection)

    async def send_email(self, row: Any) -> SendResult:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._send, row)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        for connection in self.all:
            connection.close()


class Transports:
    """A lane's sender: `send` is the SMS sender's, `send_email` the email pool's."""

    def __init__(self, sms: Any) -> None:
        self.sms = sms
        self.email: EmailPool | None = None

    async def send(self, *, msg_id: int, phone: int, text: str) -> SendResult:
        result: SendResult = await self.sms.send(msg_id=msg_id, phone=phone, text=text)
        return result

    async def send_email(self, row: Any) -> SendResult:
        if self.email is None:
            self.email = EmailPool(settings.MAILING_EMAIL_CONNECTIONS)
        return await self.email.send_email(row)

    async def aclose(self) -> None:
        await self.sms.aclose()
        if self.email is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.email.close)
