"""Assistance webhooks: an outbox channel (core.outbox) of signed POSTs to a topic's URL.

Queued with the event (under the request's row lock, sent after commit by
`assistance_webhook_deliver`); claimed with a token, one attempt row per try, the retry
decided by `core.outbox.retry_decision` (no deadline: `ASSISTANCE_WEBHOOK_MAX_ATTEMPTS`
tries). The signature is `core.outbox.webhook.sign`'s, in `X-Assistance-Signature`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from chat.assistance_jobs import assistance_webhook_deliver as assistance_webhook_deliver_job
from chat.models import AssistanceRequest, AssistanceWebhook, AssistanceWebhookAttempt
from core.events import serialize
from core.jobs import QUEUE_CHAT, enqueue_on_commit
from core.outbox import Outbox, new_claim_token, outbox_claim, outbox_record, outbox_sweep
from core.outbox.webhook import webhook_post

SIGNATURE_HEADER = "X-Assistance-Signature"

WEBHOOKS = Outbox(
    name="assistance_webhooks",
    model=AssistanceWebhook,
    attempt_model=AssistanceWebhookAttempt,
    attempt_fk="webhook",
    item="assistance_webhook",
    items="assistance_webhooks",
    id_field="webhook_id",
    max_attempts=lambda: settings.ASSISTANCE_WEBHOOK_MAX_ATTEMPTS,
    # Three call timeouts: a worker still inside its call is never reclaimed.
    stale_after=lambda: timedelta(seconds=settings.ASSISTANCE_WEBHOOK_TIMEOUT * 3),
    grace=lambda: timedelta(seconds=60),
    select_related=("request__topic",),
    log_fields=lambda webhook: {"assistance_id": webhook.request_id},
)


def assistance_webhook_queue(
    *, request: AssistanceRequest, event_type: str, data: dict[str, Any]
) -> None:
    """Queue the topic's webhook for an event (none without a URL); sent after commit."""
    topic = request.topic
    if not topic.webhook_url:
        return
    webhook = AssistanceWebhook.objects.create(
        request=request,
        event_type=event_type,
        url=topic.webhook_url,
        body=serialize({"type": event_type, "data": data}),
    )
    enqueue_on_commit(assistance_webhook_deliver_job, webhook.pk, queue=QUEUE_CHAT)


def assistance_webhook_deliver(*, webhook_id: int) -> str | None:
    """Job body: one attempt, recorded; a retry scheduled with backoff on failure.
    Returns the webhook's new status, None when there was nothing to claim."""
    token = new_claim_token()
    webhook: AssistanceWebhook | None = outbox_claim(WEBHOOKS, item_id=webhook_id, token=token)
    if webhook is None:
        return None
    result = webhook_post(
        url=webhook.url,
        body=webhook.body.encode(),
        headers={
            "X-Assistance-Event": webhook.event_type,
            "X-Assistance-Delivery": str(webhook.pk),
        },
        secret=webhook.request.topic.webhook_secret,
        signature_header=SIGNATURE_HEADER,
        timeout=settings.ASSISTANCE_WEBHOOK_TIMEOUT,
        log_fields={"webhook_id": webhook.pk, "assistance_id": webhook.request_id},
    )
    with transaction.atomic():
        recorded = outbox_record(WEBHOOKS, item=webhook, token=token, result=result)
        if recorded.applied and recorded.retry_at is not None:
            enqueue_on_commit(
                assistance_webhook_deliver_job, webhook.pk, queue=QUEUE_CHAT, at=recorded.retry_at
            )
    return recorded.status


def assistance_webhooks_sweep() -> list[int]:
    """Webhooks to send again: claims of dead workers reclaimed, and the overdue."""
    return outbox_sweep(WEBHOOKS)
