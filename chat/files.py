"""Customer files: who may download a message's file, and when it is removed.

1. **Storage.** An upload is stored as `messages/<organization id>/<random hex><ext>`
   under MEDIA_ROOT (`chat.models.message_file_path`), so a name cannot be guessed; the
   agent's own name for it is `Message.file_name`. Nothing serves MEDIA_ROOT directly.
2. **Access**, two doors, both answered by `file_response`:
   - `GET /api/messages/<uuid>/file/`: a session, or an API key with the `read` scope,
     of a member of the message's organization (`selectors.message_get_for_principal`:
     anyone else gets the 404 of an unknown message). The REST and event `file` field is
     this URL: stable (the console compares it to patch a message in place), kept in the
     event log without granting anything, and useless without credentials.
   - `GET /api/files/<token>/`: a signed, expiring link for whoever has no session, i.e.
     the client, who gets the file as a link in the SMS text. The token is the message's
     uuid signed with SECRET_KEY and a salt of its own, plus a timestamp
     (`django.core.signing.TimestampSigner`); its age is checked against
     FILE_LINK_MAX_AGE when it is *used*, so lowering the setting shortens links already
     sent. It names the message, not the file: once the message is gone, so is the link.
3. **Response.** Images (png, jpeg, gif, webp) inline, every other type as an attachment
   with the uploaded name (RFC 6266 encoding by `FileResponse`); the type comes from the
   stored name and is `application/octet-stream` unless it is an allowed upload type;
   `nosniff`, `Cache-Control: private, no-store`, and a sandbox CSP, so that a file
   opened on our origin can never run script there.
4. **Removal.** The services that delete a help desk or a client collect their messages'
   file names *before* the cascade and remove the files after commit
   (`files_delete_on_commit`); a rollback removes nothing. The admin does the same for
   the objects it deletes. Whatever else leaves a file without its message (an upload
   whose transaction rolled back, an organization's cascade, a message deleted inline in
   the admin) is removed by the cron sweeper `message_files_sweep_orphans`, only once
   the file is older than FILE_ORPHAN_GRACE: a message's file is written before its
   transaction commits, and until then no row points to it.
"""

from __future__ import annotations

import mimetypes
import os
import unicodedata
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import timedelta
from typing import IO

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signing
from django.core.files.storage import Storage
from django.db import transaction
from django.db.models import QuerySet
from django.http import FileResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from chat.models import Message
from core.errors import ApplicationError
from core.logging import get_logger

log = get_logger(__name__)

# Shown in the browser: images only (never SVG, which is a document that runs script).
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# Directory (in the storage) that holds every message file, old naming scheme included.
FILES_DIR = "messages"
_LINK_SALT = "chat.files.link"
_CHUNK = 64 * 1024
# raw.githubusercontent.com's policy: no script, no plugin, no fetch; an image still shows.
_FILE_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


def _storage() -> Storage:
    return Message._meta.get_field("file").storage  # type: ignore[union-attr]


def display_name(name: str) -> str:
    """The uploaded name without control or format characters: no CR/LF for a header,
    and no right-to-left override to show "invoice\u202efdp.exe" as "invoiceexe.pdf"."""
    cleaned = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    return cleaned.strip()[:255]


# --- signed links ---------------------------------------------------------------------


def file_link_url(message: Message) -> str:
    """An absolute link to the message's file that works without a session, for
    FILE_LINK_MAX_AGE seconds (checked when used)."""
    token = signing.TimestampSigner(salt=_LINK_SALT).sign(message.uuid.hex)
    return settings.PUBLIC_BASE_URL + reverse("message-file-link", kwargs={"token": token})


def file_link_message_uuid(token: str) -> str:
    """The message uuid a link names; a 403 if it was altered or is too old."""
    try:
        return signing.TimestampSigner(salt=_LINK_SALT).unsign(
            token, max_age=settings.FILE_LINK_MAX_AGE
        )
    except signing.SignatureExpired as exc:  # before BadSignature: it is a subclass
        raise ApplicationError(
            gettext("This link has expired."), code="link_expired", status_code=403
        ) from exc
    except signing.BadSignature as exc:
        raise ApplicationError(
            gettext("Invalid link."), code="link_invalid", status_code=403
        ) from exc


# --- serving --------------------------------------------------------------------------


async def _chunks(handle: IO[bytes]) -> AsyncIterator[bytes]:
    # daphne is ASGI: a synchronous file iterator would be read whole into memory by
    # Django (with a warning); this reads one chunk at a time off the event loop.
    read = sync_to_async(handle.read, thread_sensitive=False)
    while chunk := await read(_CHUNK):
        yield chunk


def file_response(message: Message) -> FileResponse:
    """The message's file as an HTTP response. Call only once the caller may read it."""
    if not message.file:
        raise ApplicationError(
            gettext("This message has no file."), code="not_found", status_code=404
        )
    stored = message.file.name or ""
    try:
        handle = _storage().open(stored, "rb")
    except FileNotFoundError as exc:
        log.warning("message_file_missing", message_id=message.pk, file=stored)
        raise ApplicationError(
            gettext("File not found."), code="not_found", status_code=404
        ) from exc
    guessed, _ = mimetypes.guess_type(stored)
    content_type = (
        guessed if guessed in settings.ALLOWED_UPLOAD_TYPES else "application/octet-stream"
    )
    response = FileResponse(
        handle,
        as_attachment=content_type not in INLINE_TYPES,
        filename=display_name(message.file_name or os.path.basename(stored)) or "file",
        content_type=content_type,
    )
    # Headers (length, type, disposition) are set from the file above; only the body
    # becomes asynchronous. The handle is still closed with the response.
    response.streaming_content = _chunks(handle)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    response["Content-Security-Policy"] = _FILE_CSP
    return response


# --- removal --------------------------------------------------------------------------


def message_files(messages: QuerySet[Message]) -> list[tuple[int, str]]:
    """(message id, stored name) of the messages that have a file."""
    rows = messages.exclude(file="").exclude(file__isnull=True).values_list("pk", "file")
    return [(pk, name) for pk, name in rows if name]


def files_delete_on_commit(files: list[tuple[int, str]]) -> None:
    """Remove these files once the surrounding transaction commits (not on rollback).

    Collect them with `message_files` before the rows are deleted: after the cascade no
    query can find them. A failure is logged, never raised (the deletion is committed;
    the sweeper retries what is left).
    """
    if not files:
        return

    def _delete() -> None:
        storage = _storage()
        for message_id, name in files:
            try:
                storage.delete(name)
            except OSError as exc:
                log.warning(
                    "message_file_delete_failed", message_id=message_id, file=name, error=str(exc)
                )
                continue
            log.info("message_file_deleted", message_id=message_id, file=name)

    transaction.on_commit(_delete, robust=True)


def _walk(storage: Storage, directory: str) -> Iterator[str]:
    try:
        directories, files = storage.listdir(directory)
    except FileNotFoundError:
        return
    for name in files:
        yield f"{directory}/{name}"
    for sub in directories:
        yield from _walk(storage, f"{directory}/{sub}")


def _batched(names: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for name in names:
        batch.append(name)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def message_files_sweep_orphans() -> int:
    """Remove files under `messages/` that no message points to and that are older than
    FILE_ORPHAN_GRACE (younger ones may belong to an upload not yet committed).
    Returns how many were removed."""
    storage = _storage()
    cutoff = timezone.now() - timedelta(seconds=settings.FILE_ORPHAN_GRACE)
    removed = 0
    for batch in _batched(_walk(storage, FILES_DIR), 500):
        known = set(Message.objects.filter(file__in=batch).values_list("file", flat=True))
        for name in batch:
            if name in known:
                continue
            try:
                if storage.get_modified_time(name) > cutoff:
                    continue
                storage.delete(name)
            except FileNotFoundError:
                continue  # removed meanwhile (a service's own deletion)
            removed += 1
            log.info("message_file_orphan_removed", file=name)
    if removed:
        log.warning("message_files_orphaned", count=removed)
    return removed
