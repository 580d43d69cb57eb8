"""One outbox, every channel: the same claim fencing, attempt rows, decision and HTTP
classification for sender deliveries, assistance webhooks and incident notifications.

Each test runs once per channel, on that channel's real rows. Incident notifications
had no claim token and no attempt rows before they joined the outbox: the fencing test
is what proves a late worker can no longer overwrite a reclaimed notification.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat.assistance.webhooks import WEBHOOKS
from chat.models import AssistanceRequest, AssistanceTopic, AssistanceWebhook
from core.models import Delivery, Organization
from core.outbox import (
    Outbox,
    delivery_outbox,
    new_claim_token,
    outbox_claim,
    outbox_record,
    outbox_sweep,
)
from core.outbox.email import email_send
from core.outbox.webhook import webhook_post
from core.sender import SendResult, classify, status_outcome
from escalation.models import Incident, IncidentNotification, IncidentStep
from escalation.notifications import NOTIFICATIONS

OK = SendResult("ok", 200, 5)
TRANSIENT = SendResult("transient", 503, 5, "HTTP 503")
PERMANENT = SendResult("permanent", 404, 5, "HTTP 404")


def make_delivery(org: Organization) -> int:
    row = Delivery.objects.create(
        organization=org, source=Delivery.Source.CHAT, phone=79001234567, text="hi"
    )
    return row.pk


def make_webhook(org: Organization) -> int:
    topic = AssistanceTopic.objects.create(organization=org, name="sales")
    request = AssistanceRequest.objects.create(organization=org, topic=topic)
    row = AssistanceWebhook.objects.create(
        request=request, event_type="assistance_requested", url="http://x.test/", body="{}"
    )
    return row.pk


def make_notification(org: Organization) -> int:
    now = timezone.now()
    incident = Incident.objects.create(organization=org, opened_at=now, last_occurrence_at=now)
    step = IncidentStep.objects.create(
        incident=incident,
        kind="level",
        level=1,
        reason="occurrences",
        occurrences=1,
        elapsed_seconds=0,
        fired_at=now,
    )
    row = IncidentNotification.objects.create(step=step, username="ann", address="a@x.test")
    return row.pk


CHANNELS: dict[str, tuple[Outbox, Callable[[Organization], int]]] = {
    "sender": (delivery_outbox(Delivery.Source.CHAT), make_delivery),
    "webhook": (WEBHOOKS, make_webhook),
    "email": (NOTIFICATIONS, make_notification),
}


@pytest.fixture(params=sorted(CHANNELS))
def channel(request: Any, db: None, org: Organization) -> tuple[Outbox, int]:
    outbox, make = CHANNELS[request.param]
    return outbox, make(org)


def _record(outbox: Outbox, item: Any, token: str, result: SendResult) -> Any:
    with transaction.atomic():
        return outbox_record(outbox, item=item, token=token, result=result)


def _attempts(outbox: Outbox, item_id: int) -> list[tuple[int, str]]:
    rows = outbox.attempt_model._default_manager.filter(**{f"{outbox.attempt_fk}_id": item_id})
    return list(rows.order_by("number").values_list("number", "outcome"))


def test_a_late_worker_cannot_overwrite_a_reclaimed_row(channel: tuple[Outbox, int]) -> None:
    outbox, item_id = channel
    # given worker A holds the claim, and its attempt is already numbered
    a = outbox_claim(outbox, item_id=item_id, token="token-a")
    assert a is not None and (a.status, a.claim_token, a.attempts) == ("sending", "token-a", 1)
    assert outbox_claim(outbox, item_id=item_id, token="token-b") is None  # one claimant
    assert _attempts(outbox, item_id) == [(1, "in_flight")]

    # when A looks dead, the sweeper reclaims the row and worker B claims it
    with time_machine.travel(timezone.now() + outbox.stale_after() + timedelta(seconds=1)):
        assert outbox_sweep(outbox) == [item_id]
    assert _attempts(outbox, item_id) == [(1, "lost")]
    b = outbox_claim(outbox, item_id=item_id, token="token-b")
    assert b is not None and b.attempts == 2

    # then A's late answer is recorded on its own attempt but does not move the row
    late = _record(outbox, a, "token-a", OK)
    assert not late.applied
    row = outbox.model.objects.get(pk=item_id)
    assert (row.status, row.claim_token, row.sent_at) == ("sending", "token-b", None)
    # and B's outcome is the one that counts
    assert _record(outbox, b, "token-b", TRANSIENT).applied
    row.refresh_from_db()
    assert row.status == "pending" and row.next_attempt_at > timezone.now()
    assert _attempts(outbox, item_id) == [(1, "ok"), (2, "transient")]


@pytest.mark.parametrize(
    ("result", "before", "status"),
    [
        (OK, 0, "sent"),
        (PERMANENT, 0, "failed"),  # a 4xx is final at once
        (TRANSIENT, 0, "pending"),  # retried with backoff
        (TRANSIENT, None, "failed"),  # ... until the channel's last try
    ],
)
def test_every_channel_follows_the_one_decision(
    channel: tuple[Outbox, int], result: SendResult, before: int | None, status: str
) -> None:
    outbox, item_id = channel
    limit = outbox.max_attempts() or settings.SENDER_MAX_ATTEMPTS
    done = limit - 1 if before is None else before
    outbox.model.objects.filter(pk=item_id).update(attempts=done)
    token = new_claim_token()
    item = outbox_claim(outbox, item_id=item_id, token=token)
    assert item is not None

    recorded = _record(outbox, item, token, result)

    row = outbox.model.objects.get(pk=item_id)
    assert recorded.applied and (recorded.status, row.status) == (status, status)
    assert (row.next_attempt_at is not None) == (status == "pending")
    assert (row.sent_at is not None) == (status == "sent")
    assert row.claim_token == ""
    if before is None:
        assert row.last_error == f"gave up after {limit} attempts: HTTP 503"
    assert _attempts(outbox, item_id)[-1] == (done + 1, result.outcome)


# --- one classification of results ----------------------------------------------------


@pytest.fixture(scope="module")
def answering() -> Iterator[Callable[[int], str]]:
    """A local HTTP server answering each path's status: /503 -> 503."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b'{"code": 0, "message": "OK"}'
            self.send_response(int(self.path.strip("/")))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield lambda code: f"http://127.0.0.1:{server.server_address[1]}/{code}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("code", [200, 301, 400, 404, 408, 425, 429, 500, 503])
def test_webhooks_and_the_sender_classify_a_status_alike(
    answering: Callable[[int], str], settings: Any, code: int
) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = True  # the receiver is on loopback
    result = webhook_post(
        url=answering(code),
        body=b"{}",
        headers={},
        secret="s",
        signature_header="X-Signature",
        timeout=5,
        log_fields={},
    )
    sender = classify(code, b'{"code": 0, "message": "OK"}', 1)
    assert result.outcome == sender.outcome == status_outcome(code)
    assert result.status_code == code


def test_a_failing_email_backend_is_transient_like_a_sender_outage(settings: Any) -> None:
    settings.EMAIL_BACKEND = "tests.escalation.test_notifications.FailingBackend"
    failed = email_send(subject="s", body="b", address="a@x.test")
    assert (failed.outcome, failed.status_code) == ("transient", None)
    assert "smtp down" in failed.error
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert email_send(subject="s", body="b", address="a@x.test").outcome == "ok"
