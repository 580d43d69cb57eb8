"""The websocket hub at /ws/chat/<organization>/.

Authentication: session cookie or `?token=<api key>`. Close codes: 4401 unknown
token, 4403 not a member (or no credentials), 4404 unknown organization, 4408
fell behind (reconnect with last_event_id), 4500 event stream interrupted.

On connect the server sends `{"type": "hello", "last_event_id": N}`; with
`?last_event_id=N` it first replays every event after N, then goes live, with no
gap and no duplicate (live frames that arrive during the replay are queued and
de-duplicated by id).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlparse

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError as DjangoValidationError

from core.auth import api_key_lookup
from core.events import Replay, ephemeral_publish, replay_since
from core.logging import get_logger
from core.models import Organization, slug_validator
from core.realtime import SCOPE_KEY, Batch, DirectSocket, Frame, get_hub
from core.redis import get_redis

log = get_logger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_SLOW = 4408
CLOSE_STREAM = 4500

CLIENT_FRAME_TYPES = ("ping", "typing", "read")


def _resolve(scope: dict[str, Any]) -> tuple[int | None, Any, int]:
    """(organization id, principal, close code or 0) for this connection."""
    slug = scope["url_route"]["kwargs"]["organization"]
    try:
        slug_validator(slug)  # before the query: PostgreSQL refuses e.g. a NUL byte
    except DjangoValidationError:
        return None, None, CLOSE_NOT_FOUND
    organization = Organization.objects.filter(slug=slug).first()
    if organization is None:
        return None, None, CLOSE_NOT_FOUND
    query = parse_qs(scope.get("query_string", b"").decode())
    token = (query.get("token") or [""])[0]
    if token:
        key = api_key_lookup(token)
        if key is None:
            return None, None, CLOSE_UNAUTHENTICATED
        if key.organization_id is not None:  # integration key: its organization only
            code = 0 if key.organization_id == organization.pk else CLOSE_FORBIDDEN
            return organization.pk, key, code
        principal: Any = key.user
    else:
        principal = scope.get("user") or AnonymousUser()
        if not principal.is_authenticated:
            return None, None, CLOSE_FORBIDDEN
        if not _same_origin(scope):
            # A cookie-authenticated socket opened by another site's page.
            return None, None, CLOSE_FORBIDDEN
    if not organization.memberships.filter(user=principal).exists():
        return None, None, CLOSE_FORBIDDEN
    return organization.pk, principal, 0


def _same_origin(scope: dict[str, Any]) -> bool:
    headers = dict(scope.get("headers", []))
    origin = headers.get(b"origin")
    if origin is None:
        return True
    host = headers.get(b"host", b"").decode()
    return urlparse(origin.decode()).netloc == host


def _current_event_id(organization_id: int) -> int:
    value = get_redis().get(f"events:{organization_id}:seq")
    return int(value) if value is not None else 0


class ChatConsumer(AsyncWebsocketConsumer):
    # Events come from the hub (one pub/sub per process), not a per-socket channel.
    channel_layer_alias = "__none__"

    organization_id: int | None = None
    principal: Any = None

    async def connect(self) -> None:
        # Frames the socket cannot take right now: during the replay, while the
        # transport's send buffer is full, or always when there is no direct socket
        # (a server other than daphne). Bounded: past WS_SEND_QUEUE, drop.
        self.pending: deque[tuple[int, Frame]] = deque()
        self.max_pending: int = settings.WS_SEND_QUEUE
        self.live = False
        self.last_sent = 0
        self.writer: asyncio.Task[None] | None = None
        self.wakeup = asyncio.Event()
        self.dropped = False
        self.direct: DirectSocket | None = self.scope.get(SCOPE_KEY)
        # Accept first: a close code can only be sent on an accepted socket.
        await self.accept()
        organization_id, principal, code = await sync_to_async(_resolve)(self.scope)
        if code:
            log.info("ws_refused", path=self.scope.get("path"), code=code)
            await self.close(code=code)
            return
        assert organization_id is not None
        self.organization_id, self.principal = organization_id, principal
        if self.direct is not None and not self.direct.install():
            self.direct = None
        hub = get_hub()
        await hub.join(organization_id, self)
        resume = self._last_event_id()
        if resume is not None:
            replay: Replay = await sync_to_async(replay_since)(
                organization_id=organization_id, last_event_id=resume
            )
            if replay.resync:
                await self.send(text_data=json.dumps({"type": "resync_required"}))
                self.last_sent = await sync_to_async(_current_event_id)(organization_id)
            else:
                self.last_sent = resume
                for event_id, frame in replay.frames:
                    await self.send(text_data=frame)
                    self.last_sent = event_id
        else:
            self.last_sent = await sync_to_async(_current_event_id)(organization_id)
        await self.send(text_data=json.dumps({"type": "hello", "last_event_id": self.last_sent}))
        if self.dropped:
            return
        # From here on, frames go out as they arrive. No await between going live and
        # flushing what queued during the replay, so the order is kept.
        self.live = True
        if self.direct is not None:
            self.direct.on_resume = self._flush
            self._flush()
        else:
            self.writer = asyncio.create_task(self._write())
            self.wakeup.set()

    def _last_event_id(self) -> int | None:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        raw = (query.get("last_event_id") or [""])[0]
        return int(raw) if raw.isdigit() else None

    # --- hub side (called from the hub's reader, must not block) -----------------------

    def deliver(self, batch: Batch) -> bool:
        if self.dropped:
            return True  # closing, and already counted: until it has left the hub
        direct = self.direct
        if self.live and direct is not None and not direct.paused and not self.pending:
            if batch.min_id == 0 or batch.min_id > self.last_sent:
                direct.write(batch.wire)  # the common case: one write for the batch
                self.last_sent = max(self.last_sent, batch.max_id)
            else:
                for event_id, frame in batch.items:
                    self._send_now(direct, event_id, frame)
            return True
        if len(self.pending) + len(batch.items) > self.max_pending:
            return False
        self.pending.extend(batch.items)
        if direct is None:
            self.wakeup.set()
        elif self.live and not direct.paused:
            self._flush()
        return True

    def _send_now(self, direct: DirectSocket, event_id: int, frame: Frame) -> None:
        if event_id == 0:  # ephemeral (typing): not logged, never de-duplicated
            direct.write(frame.wire)
        elif event_id > self.last_sent:  # live frames seen during the replay come twice
            direct.write(frame.wire)
            self.last_sent = event_id

    def _flush(self) -> None:
        """Send queued frames until the transport pushes back (then `on_resume` again)."""
        direct = self.direct
        if direct is None or not self.live or self.dropped:
            return
        pending = self.pending
        while pending and not direct.paused:
            if not direct.is_open:
                pending.clear()
                return
            event_id, frame = pending.popleft()
            self._send_now(direct, event_id, frame)

    def drop(self, reason: str) -> None:
        if self.dropped:
            return
        self.dropped = True
        self.pending.clear()
        code = CLOSE_SLOW if reason == "slow" else CLOSE_STREAM
        asyncio.get_running_loop().create_task(self._drop(code))

    async def _drop(self, code: int) -> None:
        await self._leave()
        # The close frame queues behind whatever the client has not read; autobahn
        # aborts the TCP connection if the close handshake does not finish within
        # its closeHandshakeTimeout, which frees the buffer of a client that never reads.
        await self.close(code=code)

    async def _write(self) -> None:
        """Without a direct socket (not daphne): one task sends through the ASGI `send`."""
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.pending:
                event_id, frame = self.pending.popleft()
                if event_id == 0:
                    await self.send(text_data=frame.text)
                elif event_id > self.last_sent:
                    await self.send(text_data=frame.text)
                    self.last_sent = event_id

    # --- client side ---------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.organization_id is None:
            return
        try:
            frame = json.loads(text_data or "")
        except ValueError:
            frame = None
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind not in CLIENT_FRAME_TYPES:
            await self._error(f"Unknown frame type; allowed: {', '.join(CLIENT_FRAME_TYPES)}.")
            return
        assert isinstance(frame, dict)
        if kind == "ping":
            await self.send(text_data=json.dumps({"type": "pong", "last_event_id": self.last_sent}))
        elif kind in ("typing", "read"):
            help_desk = frame.get("help_desk")
            if not isinstance(help_desk, str):
                await self._error("'help_desk' (uuid) is required.")
                return
            ok = await sync_to_async(self._help_desk_action)(kind, help_desk)
            if not ok:
                await self._error("Help desk not found.")

    def _help_desk_action(self, kind: str, uuid: str) -> bool:

        from chat import selectors, services
        from core.errors import ApplicationError

        principal = self.principal.user if hasattr(self.principal, "key_hash") else self.principal
        if principal is None:  # integration keys may listen but not act
            return False
        try:
            help_desk = selectors.help_desk_get_for_principal(principal=principal, uuid=uuid)
        except (ApplicationError, ValueError, DjangoValidationError):
            return False
        # The agent may belong to several organizations, but this socket speaks for one:
        # a help desk of another organization is "not found" here, or a typing frame
        # about it would reach this organization's agents.
        if help_desk.organization_id != self.organization_id:
            return False
        if kind == "read":
            services.help_desk_mark_read(help_desk=help_desk)
        else:
            ephemeral_publish(
                organization_id=help_desk.organization_id,
                event_type="typing",
                data={"help_desk": str(help_desk.uuid), "agent": principal.username},
            )
        return True

    async def _error(self, message: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "message": message}))

    async def _leave(self) -> None:
        if self.organization_id is not None:
            await get_hub().leave(self.organization_id, self)

    async def disconnect(self, code: int) -> None:
        self.live = False
        if getattr(self, "writer", None) is not None:
            self.writer.cancel()  # type: ignore[union-attr]
        if getattr(self, "direct", None) is not None:
            self.direct.on_resume = None  # type: ignore[union-attr]
        await self._leave()
