"""Open visitor sockets lose access like agents' do (chat/ws_auth.py's Guard): every
WS_AUTH_RECHECK_SECONDS each web process checks, in a few batched queries for all its
visitor sockets, that the inbox still exists with the token the socket connected with
(a rotated public token ends the old snippet's sockets) and that the visitor still
exists; the others are closed, 4403 (inbox) or 4401 (visitor). A database blip skips a
round (logged) rather than closing everyone.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from core.logging import get_logger
from core.resilience import DATABASE_ERRORS
from widget.models import Visitor, WebInbox

log = get_logger(__name__)

CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN = 4401, 4403
_CHUNK = 500


class Watched(Protocol):
    def grant(self) -> tuple[int, str, int]:
        """(inbox id, inbox token, visitor id) the socket was admitted on."""

    def revoke(self, code: int) -> None: ...


def verdicts(grants: set[tuple[int, str, int]]) -> dict[tuple[int, str, int], int]:
    """Close codes of the grants no longer valid (blocking: the database)."""
    inboxes: set[tuple[int, str]] = set()
    visitors: set[int] = set()
    inbox_ids = sorted({g[0] for g in grants})
    visitor_ids = sorted({g[2] for g in grants})
    for start in range(0, len(inbox_ids), _CHUNK):
        rows = WebInbox.objects.filter(pk__in=inbox_ids[start : start + _CHUNK])
        inboxes.update(rows.values_list("pk", "token"))
    for start in range(0, len(visitor_ids), _CHUNK):
        found = Visitor.objects.filter(pk__in=visitor_ids[start : start + _CHUNK])
        visitors.update(found.values_list("pk", flat=True))
    closes = {}
    for grant in grants:
        if (grant[0], grant[1]) not in inboxes:
            closes[grant] = CLOSE_FORBIDDEN
        elif grant[2] not in visitors:
            closes[grant] = CLOSE_UNAUTHENTICATED
    return closes


class VisitorGuard:
    def __init__(self) -> None:
        self.sockets: set[Watched] = set()
        self.task: asyncio.Task[None] | None = None

    def watch(self, socket: Watched) -> None:
        self.sockets.add(socket)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def forget(self, socket: Watched) -> None:
        self.sockets.discard(socket)

    async def _run(self) -> None:
        while self.sockets:  # only while the process has visitor sockets
            await asyncio.sleep(settings.WS_AUTH_RECHECK_SECONDS)
            sockets = list(self.sockets)
            grants = {s.grant() for s in sockets}
            try:
                closes = await database_sync_to_async(verdicts)(grants)
            except DATABASE_ERRORS as exc:
                log.warning("widget_guard_skipped", error=repr(exc))
                continue
            for socket in sockets:
                code = closes.get(socket.grant())
                if code:
                    self.sockets.discard(socket)
                    socket.revoke(code)


_guards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, VisitorGuard] = (
    weakref.WeakKeyDictionary()
)


def get_visitor_guard() -> VisitorGuard:
    loop = asyncio.get_running_loop()
    guard = _guards.get(loop)
    if guard is None:
        guard = _guards[loop] = VisitorGuard()
    return guard
