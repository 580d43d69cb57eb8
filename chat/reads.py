"""Per-agent read markers (issue 13): each agent's own unread count.

A desk counts the messages its client sent (`HelpDesk.received_count`, bumped in the same
UPDATE that records the message); an agent's `HelpDeskRead.read_count` is that number when
they last read the desk. Unread = the difference, computed in the inbox query
(`chat.inbox.with_agent_unread`), so a new message writes nothing per agent and the
inbox stays one query. Marking read publishes `help_desk_read` {help_desk, agent} so the
agent's other tabs clear their badge; other agents' counts do not move. On a web desk
(a widget visitor's) the event also names the client's last message read (`message`): the
widget turns it into the visitor's `read` frame, without the agent (widget/frames.py).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Max

from chat.models import Client, HelpDesk, HelpDeskRead, Message
from core.events import publish_on_commit
from core.logging import get_logger

log = get_logger(__name__)


@transaction.atomic
def help_desk_mark_read(*, help_desk: HelpDesk, agent: Any) -> HelpDesk:
    """Mark everything the client sent so far read, for `agent` only. Sets
    `help_desk.agent_unread` to 0 (what the representation shows this agent)."""
    help_desk.agent_unread = 0  # type: ignore[attr-defined]
    if getattr(agent, "pk", None) is None:
        return help_desk  # an integration key reads nothing for anyone
    received = (
        HelpDesk.objects.filter(pk=help_desk.pk).values_list("received_count", flat=True).first()
    )
    if received is None:
        return help_desk
    marker, created = HelpDeskRead.objects.select_for_update().get_or_create(
        help_desk=help_desk, user=agent, defaults={"read_count": received}
    )
    if created and not received:
        return help_desk  # nothing was unread
    if not created:
        if marker.read_count >= received:
            return help_desk  # nothing new: no event, no write
        marker.read_count = received
        marker.save(update_fields=["read_count", "read_at"])
    log.info("help_desk_read", help_desk_id=help_desk.pk, user_id=agent.pk, read_count=received)
    data: dict[str, Any] = {"help_desk": str(help_desk.uuid), "agent": agent.pk}
    seen = help_desk_seen_message(help_desk=help_desk, read_count=received)
    if seen is not None:
        data["message"] = seen
    publish_on_commit(help_desk.organization_id, "help_desk_read", data)
    return help_desk


def help_desk_seen_message(*, help_desk: HelpDesk, read_count: int | None = None) -> str | None:
    """On a web desk, the uuid of the client's last message an agent has read: the
    `read_count`-th one (default: the furthest any agent has read). None elsewhere."""
    if read_count is None:
        furthest = HelpDeskRead.objects.filter(help_desk=help_desk).aggregate(n=Max("read_count"))
        read_count = furthest["n"] or 0
    if read_count <= 0:
        return None
    uuids = (
        Message.objects.filter(
            help_desk=help_desk,
            type=Message.Type.RECEIVED,
            help_desk__client__channel=Client.Channel.WEB,
        )
        .order_by("pk")
        .values_list("uuid", flat=True)[read_count - 1 : read_count]
    )
    return next((str(u) for u in uuids), None)


def help_desk_agent_unread(*, help_desk: HelpDesk, agent: Any) -> HelpDesk:
    """Set `help_desk.agent_unread` for one desk fetched without the inbox annotation."""
    read = 0
    if getattr(agent, "pk", None) is not None:
        read = (
            HelpDeskRead.objects.filter(help_desk=help_desk, user=agent)
            .values_list("read_count", flat=True)
            .first()
            or 0
        )
    help_desk.agent_unread = max(help_desk.received_count - read, 0)  # type: ignore[attr-defined]
    return help_desk
