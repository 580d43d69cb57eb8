"""Chat writes for website visitors (issue 14): a web contact, its messages, its reads.

The widget app (widget/services.py) calls these; they write chat's rows and publish
chat's events exactly as the SMS paths in chat/services.py do, so agents see a web
conversation as any other one. Kept out of chat/services.py (already at its size limit).
"""

from __future__ import annotations

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from chat.files import display_name
from chat.models import Client, HelpDesk, Message
from chat.publish import help_desk_publish, message_and_desk_publish
from chat.reads import help_desk_seen_message
from chat.services import help_desk_open, help_desk_touch, message_status_apply
from core.logging import get_logger
from core.models import Organization

log = get_logger(__name__)


def _phone_taken(*, organization_id: int, phone: str, client_pk: int | None = None) -> bool:
    taken = Client.objects.filter(organization_id=organization_id, phone=phone)
    if client_pk is not None:
        taken = taken.exclude(pk=client_pk)
    return taken.exists()


def client_create_visitor(
    *, organization: Organization, name: str = "", email: str = "", phone: str = ""
) -> Client:
    """A contact for a widget visitor: channel `web`, no phone needed.

    A phone another client of the organization already has is left out (the caller keeps
    it elsewhere): a visitor types what they like, and must neither take over that
    client's contact nor learn, from a different answer, that the number is a customer's.
    """
    if phone and _phone_taken(organization_id=organization.pk, phone=phone):
        phone = ""
    client = Client(
        organization=organization,
        name=name or "Website visitor",
        email=email,
        phone=phone,
        operator_code=phone[1:4] if phone else "",
        channel=Client.Channel.WEB,
    )
    client.full_clean(validate_unique=False, validate_constraints=False)
    client.save()
    log.info("client_created", client_id=client.pk, organization_id=organization.pk, channel="web")
    return client


@transaction.atomic
def client_update_contact(
    *, client: Client, name: str = "", email: str = "", phone: str = ""
) -> Client:
    """What the visitor typed in the pre-chat form (only the fields given)."""
    changed = []
    if phone and _phone_taken(
        organization_id=client.organization_id, phone=phone, client_pk=client.pk
    ):
        phone = ""  # as in client_create_visitor: never another client's number
    for field, value in (("name", name), ("email", email), ("phone", phone)):
        if value and getattr(client, field) != value:
            setattr(client, field, value)
            changed.append(field)
    if "phone" in changed:
        client.operator_code = client.phone[1:4]
    if changed:
        client.full_clean(validate_unique=False, validate_constraints=False)
        client.save()
        log.info("client_updated", client_id=client.pk, fields=changed)
        for help_desk in client.help_desks.select_related("last_message", "assignee"):
            help_desk.client = client
            help_desk_publish(help_desk)
    return client


@transaction.atomic
def visitor_message_receive(
    *, client: Client, text: str, file: UploadedFile | None = None
) -> Message:
    """A visitor's message: into the client's open help desk (a new one if none), with
    the same bookkeeping and events as an SMS client's (chat.services.message_receive)."""
    help_desk, _ = help_desk_open(client=client)
    message = Message(
        help_desk=help_desk,
        message=text,
        type=Message.Type.RECEIVED,
        status=Message.Status.DELIVERED,
    )
    if file is not None:
        message.file = file  # stored under a random name (chat.models.message_file_path)
        message.file_name = display_name(file.name or "")
    message.save()
    help_desk_touch(help_desk=help_desk, message=message, unread=True, locked=True)
    log.info(
        "message_received",
        message_id=message.pk,
        help_desk_id=help_desk.pk,
        client_id=client.pk,
        channel="web",
    )
    message_and_desk_publish("new_message", message, help_desk)
    return message


@transaction.atomic
def visitor_messages_read(*, help_desk: HelpDesk) -> int:
    """The visitor has seen the agents' messages: each moves to `read` (agents get
    `update_message`). Returns how many moved."""
    unread = list(
        Message.objects.filter(
            help_desk=help_desk,
            type=Message.Type.SENT,
            status__in=(Message.Status.SENDING, Message.Status.SENT, Message.Status.DELIVERED),
        ).order_by("pk")[:200]
    )
    return sum(
        1 for message in unread if message_status_apply(message=message, status=Message.Status.READ)
    )


def visitor_seen_message(*, help_desk: HelpDesk) -> str | None:
    """The uuid of the visitor's last message in `help_desk` an agent has read (the
    furthest any agent has read, chat/reads.py), or None: the widget's "Seen" at start."""
    return help_desk_seen_message(help_desk=help_desk)
