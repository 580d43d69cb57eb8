"""RQ entry points for chat: thin, take ids, idempotent."""

from __future__ import annotations


def message_deliver(message_id: int) -> None:
    from chat.services import message_deliver as deliver

    deliver(message_id=message_id)


def chat_deliveries_sweep() -> int:
    """Cron: re-enqueue chat deliveries abandoned by a killed worker or a lost job."""
    from chat.models import Message
    from chat.services import chat_deliveries_close_orphans
    from core.jobs import QUEUE_CHAT, enqueue_now
    from core.models import Delivery
    from core.outbox import delivery_outbox, outbox_sweep

    chat_deliveries_close_orphans()
    # The outbox's one sweeper: stale claims reclaimed, overdue rows found.
    delivery_ids = outbox_sweep(delivery_outbox(Delivery.Source.CHAT))
    message_ids = list(
        Message.objects.filter(delivery_id__in=delivery_ids).values_list("pk", flat=True)
    )
    for message_id in message_ids:
        enqueue_now(message_deliver, message_id, queue=QUEUE_CHAT)
    return len(message_ids)


def message_files_sweep() -> int:
    """Cron: remove message files no message points to any more (chat/files.py)."""
    from chat.files import message_files_sweep_orphans

    return message_files_sweep_orphans()


def help_desks_unsnooze() -> int:
    """Cron: reopen snoozed help desks whose time has come (chat/workflow.py)."""
    from chat.workflow import help_desks_unsnooze_due

    return help_desks_unsnooze_due()
