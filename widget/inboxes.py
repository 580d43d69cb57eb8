"""Web inbox writes (admins: API and Django admin) and the inbox's opening hours."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from core.errors import ApplicationError
from core.i18n import supported_language
from core.logging import get_logger
from core.models import Membership, Organization
from widget.models import WebInbox, new_inbox_secret, new_inbox_token

log = get_logger(__name__)

INBOX_FIELDS = (
    "name",
    "allowed_origins",
    "greeting",
    "away_message",
    "timezone",
    "business_hours",
    "prechat_name",
    "prechat_email",
    "prechat_phone",
    "language",
)
_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


def origin_normalize(value: str) -> str:
    """`scheme://host[:port]` exactly (what a browser sends as Origin), or a 400."""
    if not isinstance(value, str) or len(value) > 200:
        raise ValueError(value)
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(value)
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(value)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _validated(data: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    out = dict(data)
    if "allowed_origins" in data:
        try:
            out["allowed_origins"] = sorted({origin_normalize(o) for o in data["allowed_origins"]})
        except (ValueError, TypeError):
            errors["allowed_origins"] = ["Each origin is scheme://host[:port], http or https."]
    if data.get("language"):
        # The widget's default: one the platform speaks, as settings.LANGUAGES spell it.
        language = supported_language(data["language"])
        if language is None:
            errors["language"] = [_("Not a language the widget speaks (en, ru, pt-br).")]
        out["language"] = language
    if "business_hours" in data:
        hours = data["business_hours"]
        ok = isinstance(hours, list) and len(hours) <= 50
        for item in hours if ok else []:
            ok = ok and (
                isinstance(item, dict)
                and set(item) == {"weekday", "start", "end"}
                and item["weekday"] in range(7)
                and isinstance(item["start"], str)
                and isinstance(item["end"], str)
                and bool(_HHMM.fullmatch(item["start"]))
                and bool(_HHMM.fullmatch(item["end"]))
                and item["start"] < item["end"]
            )
        if not ok:
            errors["business_hours"] = [
                'A list of {"weekday": 0-6 (Monday 0), "start": "HH:MM", "end": "HH:MM"}.'
            ]
    if errors:
        raise ApplicationError("Invalid web inbox.", fields=errors)
    return out


def _save(inbox: WebInbox) -> WebInbox:
    try:
        inbox.full_clean()
    except DjangoValidationError as exc:
        raise ApplicationError("Invalid web inbox.", fields=exc.message_dict) from exc
    inbox.save()
    return inbox


@transaction.atomic
def web_inbox_create(*, organization: Organization, **data: Any) -> WebInbox:
    fields = _validated({k: v for k, v in data.items() if k in INBOX_FIELDS})
    inbox = _save(WebInbox(organization=organization, **fields))
    log.info("web_inbox_created", web_inbox_id=inbox.pk, organization_id=organization.pk)
    return inbox


@transaction.atomic
def web_inbox_update(*, web_inbox: WebInbox, data: dict[str, Any]) -> WebInbox:
    fields = _validated({k: v for k, v in data.items() if k in INBOX_FIELDS})
    for name, value in fields.items():
        setattr(web_inbox, name, value)
    _save(web_inbox)
    log.info("web_inbox_updated", web_inbox_id=web_inbox.pk, fields=sorted(fields))
    return web_inbox


@transaction.atomic
def web_inbox_rotate(*, web_inbox: WebInbox, secret: bool = True, token: bool = False) -> WebInbox:
    """A new identity secret (every user_hash signed with the old one stops working) and,
    if asked, a new public token (the snippet on the site must change with it)."""
    if secret:
        web_inbox.secret = new_inbox_secret()
    if token:
        web_inbox.token = new_inbox_token()
    web_inbox.save(update_fields=["secret", "token", "updated_at"])
    log.info("web_inbox_rotated", web_inbox_id=web_inbox.pk, secret=secret, token=token)
    return web_inbox


@transaction.atomic
def web_inbox_delete(*, web_inbox: WebInbox) -> None:
    log.info("web_inbox_deleted", web_inbox_id=web_inbox.pk)
    web_inbox.delete()


def web_inbox_is_open(*, web_inbox: WebInbox, now: dt.datetime) -> bool:
    """Within business hours (in the inbox's time zone); no hours set means always."""
    hours = web_inbox.business_hours
    if not hours:
        return True
    local = now.astimezone(ZoneInfo(web_inbox.timezone))
    hhmm = local.strftime("%H:%M")
    return any(h["weekday"] == local.weekday() and h["start"] <= hhmm < h["end"] for h in hours)


def web_inbox_online(*, web_inbox: WebInbox, now: dt.datetime) -> bool:
    """Someone can answer now: within business hours and at least one member marked
    available (the same flag round-robin assignment reads). It is the agents' declared
    availability, not a live presence of their sockets."""
    if not web_inbox_is_open(web_inbox=web_inbox, now=now):
        return False
    return Membership.objects.filter(
        organization_id=web_inbox.organization_id, is_available=True, user__is_active=True
    ).exists()
