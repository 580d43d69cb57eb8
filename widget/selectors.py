"""Widget reads, scoped to what the principal may see."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from chat.models import Message
from chat.selectors import help_desk_get_for_principal
from core.access import organizations_for
from core.errors import ApplicationError
from core.queries import unique_row
from widget.models import Rating, Visitor, WebInbox


def web_inbox_list(*, principal: Any, organization_slug: str | None = None) -> QuerySet[WebInbox]:
    qs = WebInbox.objects.filter(organization__in=organizations_for(principal))
    if organization_slug is not None:
        qs = qs.filter(organization__slug=organization_slug)
    return qs.select_related("organization")


def web_inbox_get_for_principal(*, principal: Any, pk: int) -> WebInbox:
    inbox = web_inbox_list(principal=principal).filter(pk=pk).first()
    if inbox is None:
        raise ApplicationError("Web inbox not found.", code="not_found", status_code=404)
    return inbox


def web_inbox_by_token(*, token: str) -> WebInbox:
    """The inbox a public token names; the same 404 for a malformed and an unknown one."""
    inbox = None
    if 10 <= len(token) <= 40 and token.replace("-", "").replace("_", "").isalnum():
        inbox = unique_row(WebInbox.objects.select_related("organization").filter(token=token))
    if inbox is None:
        raise ApplicationError(_("Unknown widget."), code="not_found", status_code=404)
    return inbox


def rating_list(*, principal: Any, organization_slug: str | None = None) -> QuerySet[Rating]:
    qs = Rating.objects.filter(organization__in=organizations_for(principal))
    if organization_slug is not None:
        qs = qs.filter(organization__slug=organization_slug)
    return qs


def visitor_get_for_help_desk(*, principal: Any, uuid: str) -> Visitor:
    """The visitor behind a help desk the principal may see; 404 otherwise (also when
    the desk is not a web conversation)."""
    help_desk = help_desk_get_for_principal(principal=principal, uuid=uuid)
    visitor = Visitor.objects.select_related("inbox").filter(client_id=help_desk.client_id).first()
    if visitor is None:
        raise ApplicationError("No visitor for this help desk.", code="not_found", status_code=404)
    return visitor


def visitor_history(*, visitor: Visitor, limit: int = 200) -> list[Any]:
    """The visitor's latest messages across their conversations, oldest first."""
    rows = (
        Message.objects.filter(help_desk__client_id=visitor.client_id)
        .select_related("help_desk", "sender")
        .order_by("-created_at", "-pk")[:limit]
    )
    return list(reversed(rows))


def rating_of_help_desk(*, help_desk_uuid: str) -> Rating | None:
    """The rating of a help desk; call once the caller may see the desk."""
    return Rating.objects.filter(help_desk__uuid=help_desk_uuid).first()
