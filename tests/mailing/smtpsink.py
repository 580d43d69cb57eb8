"""A real SMTP server on loopback (aiosmtpd) that records what it accepted and can
misbehave on cue: the email tests and contrib/bench/mailing_email.py send through it.

Faults are queued per recipient address and used up one per delivery attempt:

- `"421"`: answers RCPT TO with 421 and closes the connection (service shutting down);
- `"451"`: takes the whole message, then answers DATA with 451 (try later; not accepted);
- `"drop"`: closes the connection when RCPT TO arrives (no answer);
- `"550"`: answers RCPT TO with 550 (no such user: permanent).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    rcpt: str
    message: EmailMessage


@dataclass
class SinkHandler:
    keep: bool = True  # keep parsed messages (the benchmark only counts)
    received: list[Received] = field(default_factory=list)
    accepted: Counter[str] = field(default_factory=Counter)  # per Message-ID
    faults: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    connections: int = 0
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _fault(self, address: str, stage: str) -> str | None:
        with self.lock:
            queue = self.faults.get(address.lower())
            if queue and queue[0] in stage.split("|"):
                return queue.popleft()
        return None

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> Any:
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        fault = self._fault(address, "421|drop|550")
        if fault == "421":
            asyncio.get_running_loop().call_later(0.01, server.transport.close)
            return "421 4.3.2 Service shutting down"
        if fault == "drop":
            server.transport.close()
            return "250 OK"  # never reaches the client
        if fault == "550":
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        rcpt = envelope.rcpt_tos[0]
        if self._fault(rcpt, "451"):
            return "451 4.3.0 Try again later"
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.accepted[str(parsed["Message-ID"])] += 1
            if self.keep:
                self.received.append(Received(rcpt, parsed))  # type: ignore[arg-type]
        return "250 2.0.0 Accepted"

    def fail(self, address: str, *faults: str) -> None:
        with self.lock:
            self.faults[address.lower()].extend(faults)

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [r.message for r in self.received if r.rcpt.lower() == address.lower()]


class SmtpSink:
    def __init__(self, port: int, *, keep: bool = True) -> None:
        self.handler = SinkHandler(keep=keep, port=port)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=port)
        self.port = port

    def __enter__(self) -> SinkHandler:
        self.controller.start()
        return self.handler

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
