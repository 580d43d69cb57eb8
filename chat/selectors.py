"""Chat reads, and the fetch-and-authorize helpers used by views and the consumer."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from django.utils.translation import gettext

from chat.models import Client, HelpDesk, Message
from core.access import organizations_for
from core.errors import ApplicationError
from core.queries import unique_row


def _help_desks(principal: Any) -> QuerySet[HelpDesk]:
    return HelpDesk.objects.filter(organization__in=organizations_for(principal))


def help_desk_list(*, principal: Any, organization_slug: str | None = None) -> QuerySet[HelpDesk]:
    qs = _help_desks(principal)
    if organization_slug is not None:
        qs = qs.filter(organization__slug=organization_slug)
    # The client's organization is the desk's (HelpDeskSerializer takes it from there).
    return qs.select_related(
        "client",
        "last_message",
        "last_message__sender",
        "organization",
        "assignee",
    )


def help_desk_get_for_principal(
    *, principal: Any, uuid: UUID | str, lock: bool = False, nested: bool = True
) -> HelpDesk:
    """The help desk `uuid` if `principal` sees it, else ApplicationError 404. With
    `nested` False only its client is loaded with it: for a caller that writes to the
    desk through a service (which reloads what its event nests), not one that shows it.
    With `lock` (inside the caller's transaction) the row is locked, and with `nested`
    False what a new message's event nests besides is joined (its assignee and
    organization): a service told `locked=True` then updates it without reading it back."""
    qs = help_desk_list(principal=principal) if nested else _help_desks(principal)
    if not nested:
        qs = qs.select_related("client", *(("assignee", "organization") if lock else ()))
    if lock:
        qs = qs.select_for_update(of=("self",))
    help_desk = unique_row(qs.filter(uuid=uuid))
    if help_desk is None:
        raise ApplicationError(gettext("Help desk not found."), code="not_found", status_code=404)
    return help_desk


def message_list(*, help_desk: HelpDesk) -> QuerySet[Message]:
    return Message.objects.filter(help_desk=help_desk).select_related("help_desk", "sender")


def message_get_for_principal(*, principal: Any, uuid: UUID | str) -> Message:
    message = (
        Message.objects.filter(help_desk__organization__in=organizations_for(principal), uuid=uuid)
        .select_related("help_desk", "delivery")
        .first()
    )
    if message is None:
        raise ApplicationError(gettext("Message not found."), code="not_found", status_code=404)
    return message


def message_get_for_link(*, uuid: UUID | str) -> Message:
    """The message a signed file link names (chat/files.py): the signature, checked by
    the caller, is the authorization; a deleted message is a 404."""
    message = Message.objects.filter(uuid=uuid).first()
    if message is None:
        raise ApplicationError(gettext("Message not found."), code="not_found", status_code=404)
    return message


def client_list(*, principal: Any, organization_slug: str | None = None) -> QuerySet[Client]:
    qs = Client.objects.filter(organization__in=organizations_for(principal)).select_related(
        "organization"
    )
    if organization_slug is not None:
        qs = qs.filter(organization__slug=organization_slug)
    return qs


def client_get_for_principal(*, principal: Any, uuid: UUID | str) -> Client:
    client = client_list(principal=principal).filter(uuid=uuid).first()
    if client is None:
        raise ApplicationError(gettext("Client not found."), code="not_found", status_code=404)
    return client
