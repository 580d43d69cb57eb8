"""Widget writes: a visitor starts or resumes, writes, types, reads and rates.

1. **Who the visitor is.** `visitor_start` takes, in this order: a verified identity
   (`user_id` + `user_hash`, the HMAC-SHA256 of the id under the inbox's secret; a
   wrong hash is a 403, so nobody can claim a user id), else a visitor token the widget
   kept (signed by us, `django.core.signing`, expiring), else a new anonymous visitor.
   A verified identity always gets the same visitor (and so its whole history) on any
   device; a token issued to a verified visitor keeps working without the hash.
2. **What the token grants**: this visitor's conversations in this inbox, nothing else.
   It names the visitor's uuid and the inbox id; a token of another inbox is refused.
3. **Writes go through chat** (chat/visitors.py), which publishes chat's events, so
   agents see a web conversation as any other one and the visitor socket
   (widget/consumers.py) gets its frames from the same log.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from chat.models import HelpDesk, Message
from chat.visitors import (
    client_create_visitor,
    client_update_contact,
    visitor_message_receive,
    visitor_messages_read,
)
from core.errors import ApplicationError
from core.events import ephemeral_publish, event_log_open
from core.logging import get_logger
from core.queries import unique_row
from widget.models import Rating, Visitor, WebInbox

log = get_logger(__name__)

_TOKEN_SALT = "widget.visitor"
RESOLVED_STATUSES = ("resolved", "closed")  # `closed` is the seed's name for it


# --- tokens and identity --------------------------------------------------------------


def visitor_token(visitor: Visitor) -> str:
    return signing.dumps({"v": visitor.uuid.hex, "i": visitor.inbox_id}, salt=_TOKEN_SALT)


def visitor_from_token(*, web_inbox: WebInbox, token: str) -> Visitor:
    """The visitor a token names in this inbox; a 401 if altered, expired or another's."""
    try:
        payload = signing.loads(
            token, salt=_TOKEN_SALT, max_age=settings.WIDGET_VISITOR_TOKEN_MAX_AGE
        )
    except signing.BadSignature as exc:
        raise ApplicationError(
            _("Invalid or expired visitor token."), code="visitor_token_invalid", status_code=401
        ) from exc
    if not isinstance(payload, dict) or payload.get("i") != web_inbox.pk:
        raise ApplicationError(
            _("Invalid or expired visitor token."), code="visitor_token_invalid", status_code=401
        )
    visitor = unique_row(
        Visitor.objects.select_related("client").filter(
            uuid=str(payload.get("v", "")), inbox=web_inbox
        )
    )
    if visitor is None:
        raise ApplicationError(
            _("Invalid or expired visitor token."), code="visitor_token_invalid", status_code=401
        )
    visitor.inbox = web_inbox  # the row it was found under: not joined again
    return visitor


def identity_hash(*, secret: str, user_id: str) -> str:
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def _identity_check(*, web_inbox: WebInbox, user_id: str, user_hash: str) -> None:
    expected = identity_hash(secret=web_inbox.secret, user_id=user_id)
    if not user_hash or not hmac.compare_digest(expected, user_hash.lower()):
        log.warning("widget_identity_refused", web_inbox_id=web_inbox.pk)
        raise ApplicationError(
            _(
                "user_hash does not match user_id: sign the id with the inbox's secret "
                "(HMAC-SHA256, hex) on your server."
            ),
            code="identity_invalid",
            status_code=403,
        )


def current_event_id(organization_id: int) -> int:
    """The organization's last event id: where a visitor's socket resumes from.

    Seeded if the organization's log has no counter yet (core.events.event_log_open): a
    0 here made the socket of a new organization's first visitor, resuming from 0 after
    its join seeded the counter, get `resync_required` and a second `start`.
    """
    return event_log_open(organization_id=organization_id)


# --- start ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    visitor: Visitor
    token: str
    created: bool


def _new_visitor(*, web_inbox: WebInbox, user_id: str, contact: dict[str, str]) -> Visitor:
    client = client_create_visitor(organization=web_inbox.organization, **contact)
    return Visitor.objects.create(inbox=web_inbox, client=client, user_id=user_id)


@transaction.atomic
def visitor_start(
    *,
    web_inbox: WebInbox,
    token: str = "",
    user_id: str = "",
    user_hash: str = "",
    contact: dict[str, str] | None = None,
    context: dict[str, Any] | None = None,
) -> Start:
    """Start or resume the visitor's chat (see the module docstring, 1)."""
    contact = {k: v for k, v in (contact or {}).items() if v}
    visitor: Visitor | None = None
    created = False
    if user_id:
        _identity_check(web_inbox=web_inbox, user_id=user_id, user_hash=user_hash)
        visitor = (
            Visitor.objects.select_related("client")
            .filter(inbox=web_inbox, user_id=user_id)
            .first()
        )
        if visitor is None:
            try:
                with transaction.atomic():
                    visitor = _new_visitor(web_inbox=web_inbox, user_id=user_id, contact=contact)
                    created = True
            except IntegrityError:
                # The same user opened two tabs at once: the other one created it.
                visitor = Visitor.objects.select_related("client").get(
                    inbox=web_inbox, user_id=user_id
                )
    elif token:
        visitor = visitor_from_token(web_inbox=web_inbox, token=token)
    if visitor is None:
        visitor = _new_visitor(web_inbox=web_inbox, user_id="", contact=contact)
        created = True
    elif contact:
        client_update_contact(client=visitor.client, **contact)
    if contact.get("phone") and visitor.client.phone != contact["phone"]:
        visitor.phone = contact["phone"]  # kept off the contact (see chat.visitors)
    if context:
        for field in ("page_url", "user_agent", "utc_offset"):
            if field in context:
                setattr(visitor, field, context[field])
    visitor.save()
    if created:
        log.info("widget_visitor_created", web_inbox_id=web_inbox.pk, client_id=visitor.client_id)
    return Start(visitor=visitor, token=visitor_token(visitor), created=created)


# --- conversation --------------------------------------------------------------------


def _missing_prechat(visitor: Visitor) -> dict[str, list[str]]:
    inbox, client = visitor.inbox, visitor.client
    missing = {}
    for field in ("name", "email", "phone"):
        required = getattr(inbox, f"prechat_{field}") == WebInbox.Field.REQUIRED
        if field == "name":
            has = client.name != "Website visitor"
        else:
            has = bool(getattr(client, field) or (field == "phone" and visitor.phone))
        if required and not has:
            missing[field] = [_("Required by this inbox before the first message.")]
    return missing


def visitor_message_send(
    *, visitor: Visitor, text: str, file: UploadedFile | None = None
) -> Message:
    missing = _missing_prechat(visitor)
    if missing:
        raise ApplicationError(
            _("Tell us who you are first."), code="prechat_required", fields=missing
        )
    if not text.strip() and file is None:
        raise ApplicationError(
            _("Write something or attach a file."), fields={"text": [_("Empty.")]}
        )
    return visitor_message_receive(client=visitor.client, text=text, file=file)


def visitor_help_desk(*, visitor: Visitor) -> HelpDesk | None:
    """The visitor's current conversation: the latest one."""
    return (
        HelpDesk.objects.filter(client_id=visitor.client_id)
        .order_by("-last_activity_at", "-pk")
        .first()
    )


def visitor_typing(*, visitor: Visitor) -> bool:
    """Tell the agents (ephemeral: no event id, not logged, like agents' typing)."""
    help_desk = visitor_help_desk(visitor=visitor)
    if help_desk is None:
        return False
    ephemeral_publish(
        organization_id=help_desk.organization_id,
        event_type="typing",
        data={"help_desk": str(help_desk.uuid), "visitor": str(visitor.uuid)},
    )
    return True


def visitor_read(*, visitor: Visitor) -> int:
    help_desk = visitor_help_desk(visitor=visitor)
    return 0 if help_desk is None else visitor_messages_read(help_desk=help_desk)


@transaction.atomic
def rating_create(*, visitor: Visitor, score: int, comment: str = "") -> Rating:
    help_desk = visitor_help_desk(visitor=visitor)
    if help_desk is None or help_desk.status not in RESOLVED_STATUSES:
        raise ApplicationError(
            _("A conversation can be rated once it is resolved."),
            code="not_resolved",
            status_code=409,
        )
    try:
        with transaction.atomic():
            rating = Rating.objects.create(
                organization_id=help_desk.organization_id,
                inbox=visitor.inbox,
                help_desk=help_desk,
                score=score,
                comment=comment,
            )
    except IntegrityError as exc:
        raise ApplicationError(
            _("This conversation is already rated."), code="already_rated", status_code=409
        ) from exc
    log.info("widget_rated", help_desk_id=help_desk.pk, score=score, at=timezone.now().isoformat())
    return rating
