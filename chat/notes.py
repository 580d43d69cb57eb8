"""Private notes in a conversation (issue 13): agents only.

A note is never sent to the client (no Delivery, no job), never in the desk's message
history (`GET /api/help-desks/<uuid>/history/` lists `Message` rows only) and travels as
its own event type, `new_note`, which only agents' sockets receive (the widget's
socket forwards message events of its own conversation, never this type).
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet

from chat.models import HelpDesk, HelpDeskNote
from chat.representations import NoteSerializer
from core.events import publish_on_commit
from core.logging import get_logger

log = get_logger(__name__)

# Django's username characters; `@` must not follow a word character, so an email
# address in the text (bob@example.com) mentions nobody.
_MENTION = re.compile(r"(?<![\w@])@([\w.+-]{1,150})")


def _mentioned_ids(*, organization_id: int, text: str) -> list[int]:
    names = {name.rstrip(".") for name in _MENTION.findall(text)}
    if not names:
        return []
    # Only members of the desk's organization: naming another tenant's user is plain text.
    return sorted(
        get_user_model()
        .objects.filter(memberships__organization_id=organization_id, username__in=names)
        .values_list("pk", flat=True)
    )


def note_list(*, help_desk: HelpDesk) -> QuerySet[HelpDeskNote]:
    return HelpDeskNote.objects.filter(help_desk=help_desk).select_related("help_desk", "author")


@transaction.atomic
def note_create(*, help_desk: HelpDesk, author: Any, text: str) -> HelpDeskNote:
    note = HelpDeskNote.objects.create(
        help_desk=help_desk,
        author=author,
        text=text,
        mentions=_mentioned_ids(organization_id=help_desk.organization_id, text=text),
    )
    log.info(
        "note_created",
        note_id=note.pk,
        help_desk_id=help_desk.pk,
        author_id=getattr(author, "pk", None),
        mentions=note.mentions,
    )
    publish_on_commit(help_desk.organization_id, "new_note", NoteSerializer(note).data)
    return note
