"""Canned replies (issue 13): an organization's saved answers, inserted with `/shortcut`.

Written by organization admins (the API checks), read by every agent of the
organization. The text is stored as given and rendered by the console as plain text,
its `{{ variable }}`s filled from the client there: nothing here interprets it.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext

from chat.models import CannedReply
from core.errors import ApplicationError
from core.logging import get_logger
from core.models import Organization

log = get_logger(__name__)

FIELDS = ("shortcut", "title", "text")


def _save(reply: CannedReply) -> CannedReply:
    try:
        with transaction.atomic():
            reply.save()
    except IntegrityError as exc:
        raise ApplicationError(
            gettext("This shortcut already exists."),
            fields={"shortcut": [gettext("Already used in this organization.")]},
        ) from exc
    return reply


def canned_reply_create(
    *, organization: Organization, shortcut: str, title: str, text: str
) -> CannedReply:
    reply = _save(CannedReply(organization=organization, shortcut=shortcut, title=title, text=text))
    log.info("canned_reply_created", canned_reply_id=reply.pk, organization_id=organization.pk)
    return reply


def canned_reply_update(*, reply: CannedReply, data: dict[str, Any]) -> CannedReply:
    for field in FIELDS:
        if field in data:
            setattr(reply, field, data[field])
    _save(reply)
    log.info("canned_reply_updated", canned_reply_id=reply.pk, fields=sorted(data))
    return reply


def canned_reply_delete(*, reply: CannedReply) -> None:
    log.info("canned_reply_deleted", canned_reply_id=reply.pk)
    reply.delete()
