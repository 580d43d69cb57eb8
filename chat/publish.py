"""The chat's events, built in one place: a help desk or message is published as its one
representation (chat/representations.py), after the transaction commits."""

from __future__ import annotations

from chat.models import HelpDesk, Message
from chat.representations import HelpDeskSerializer, MessageSerializer
from core.events import publish_many_on_commit, publish_on_commit


def help_desk_publish(help_desk: HelpDesk) -> None:
    publish_on_commit(
        help_desk.organization_id, "update_helpdesk", HelpDeskSerializer(help_desk).data
    )


def help_desk_publish_deleted(help_desk: HelpDesk) -> None:
    publish_on_commit(
        help_desk.organization_id,
        "delete_helpdesk",
        {"uuid": str(help_desk.uuid), "client": str(help_desk.client.uuid)},
    )


def message_publish(event_type: str, message: Message) -> None:
    publish_on_commit(
        message.help_desk.organization_id, event_type, MessageSerializer(message).data
    )


def message_and_desk_publish(event_type: str, message: Message, help_desk: HelpDesk) -> None:
    """A message's event and then its desk's (`update_helpdesk`), in one Redis round trip."""
    publish_many_on_commit(
        help_desk.organization_id,
        [
            (event_type, MessageSerializer(message).data),
            ("update_helpdesk", HelpDeskSerializer(help_desk).data),
        ],
    )
