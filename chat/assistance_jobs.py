"""RQ entry points for assistance: thin, take ids, idempotent."""

from __future__ import annotations


def assistance_route(request_id: int) -> None:
    from chat.assistance import assistance_request_route

    assistance_request_route(request_id=request_id)


def assistance_webhook_deliver(webhook_id: int) -> None:
    from chat.assistance import assistance_webhook_deliver as deliver

    deliver(webhook_id=webhook_id)


def assistance_sweep() -> int:
    """Cron: re-enqueue unrouted requests and overdue webhooks (lost job, killed worker)."""
    from chat.assistance import assistance_sweep as sweep
    from core.jobs import QUEUE_CHAT, enqueue_now

    found = sweep()
    for request_id in found["requests"]:
        enqueue_now(assistance_route, request_id, queue=QUEUE_CHAT)
    for webhook_id in found["webhooks"]:
        enqueue_now(assistance_webhook_deliver, webhook_id, queue=QUEUE_CHAT)
    return len(found["requests"]) + len(found["webhooks"])
