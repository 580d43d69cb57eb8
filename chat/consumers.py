"""The websocket hub at /ws/chat/<organization>/.

Authentication: session cookie or `?token=<api key>` (with the `read` scope; `typing`
and `read` frames need `agent`). Credentials are checked before the organization is
looked up, so an unknown organization and one the principal does not belong to get
the same answer (chat/ws_auth.py), and every web process re-validates its open
sockets every WS_AUTH_RECHECK_SECONDS (revoked key, deactivated user, removed
membership: closed).

Close codes:
- 4400 malformed `last_event_id` (after an error frame `bad_last_event_id`);
- 4401 unknown or revoked key (at connect, or later when revoked);
- 4403 no credentials, missing scope, unknown organization or not a member (at
  connect, or later when the membership, the session or the user is gone);
- 4408 fell behind (reconnect with last_event_id);
- 4429 too many connects (WS_CONNECT_RATE) or frames (WS_FRAME_RATE), after an error
  frame `rate_limited` with `retry_after`;
- 4500 event stream interrupted (reconnect with last_event_id).

On connect the server sends `{"type": "hello", "last_event_id": N}`; with
`?last_event_id=N` it first replays every event after N, then goes live, with no
gap and no duplicate (live frames that arrive during the replay are queued and
de-duplicated by id). N is 1 to 16 ASCII digits, at most 2**53 - 1 (what a
JavaScript client can hold exactly); an N ahead of the organization's counter is
answered with `resync_required` and the current id.

Client frames: at most WS_FRAME_RATE per socket (each frame over it is dropped, the
first with an error frame; twice the limit within one window closes with 4429);
`typing` is coalesced to one broadcast per help desk per socket every
WS_TYPING_INTERVAL seconds (later ones are dropped silently).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError

from chat import reads, selectors, ws_auth, ws_batches
from core import scopes
from core.access import is_agent
from core.daphne_support import SCOPE_KEY, DirectSocket
from core.errors import ApplicationError
from core.events import Replay, ephemeral_publish, replay_since
from core.logging import get_logger
from core.ratelimit import rate
from core.realtime import Batch, Frame, get_hub

log = get_logger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = ws_auth.CLOSE_UNAUTHENTICATED
CLOSE_FORBIDDEN = ws_auth.CLOSE_FORBIDDEN
CLOSE_SLOW = 4408
CLOSE_RATE_LIMITED = ws_auth.CLOSE_RATE_LIMITED
CLOSE_STREAM = 4500

CLIENT_FRAME_TYPES = ("ping", "typing", "read")
MAX_CLIENT_FRAME = 4096  # characters; the largest legitimate client frame is ~100
MAX_EVENT_ID = 2**53 - 1  # ids stay below it (core/events.py); JavaScript holds it exactly
_EVENT_ID = re.compile(r"[0-9]{1,16}")

ws_auth.check_settings()  # a malformed rate stops the web process at start


class BadLastEventId(ValueError):
    pass


def parse_last_event_id(query_string: bytes) -> int | None:
    """The `last_event_id` query parameter: None when absent; BadLastEventId unless it is
    one value of 1-16 ASCII digits no greater than MAX_EVENT_ID (`str.isdigit` alone
    let through '²' and 23-digit ids that Redis refuses, which ended in a 1011)."""
    values = parse_qs(query_string.decode(errors="replace")).get("last_event_id")
    if not values:
        return None
    if len(values) != 1 or not _EVENT_ID.fullmatch(values[0]):
        raise BadLastEventId(values[0][:40])
    value = int(values[0])
    if value > MAX_EVENT_ID:
        raise BadLastEventId(values[0][:40])
    return value


class ChatConsumer(AsyncWebsocketConsumer):
    # Events come from the hub (one pub/sub per process), not a per-socket channel.
    channel_layer_alias = "__none__"

    organization_id: int | None = None
    # What the socket was admitted on (re-validated by ws_auth.Guard) and who acts for
    # `typing`/`read` (None for an integration key, which may only listen).
    grant: ws_auth.Grant | None = None
    key_scopes: frozenset[str] | None = None  # None: a session socket (not scoped)
    user: Any = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its `close_old_connections` thread hop before every
        message (connect, each frame, disconnect): in a reconnect storm that hop cost more
        than everything else the consumer does. Every database call here goes through
        `database_sync_to_async` (the admission batches, `_help_desk_action`), which
        closes stale connections around itself; the replay reads Redis only."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        # Channels' version also closes old database connections (a thread hop); there
        # are no channel-layer groups to discard (channel_layer_alias "__none__").
        await self.disconnect(message["code"])
        raise StopConsumer()

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
        self.frame_limit, self.frame_window = rate("WS_FRAME_RATE")
        self.frame_window_start = 0.0
        self.frame_count = 0
        self.typing_sent: dict[str, float] = {}
        # Accept first: a close code can only be sent on an accepted socket.
        await self.accept()
        admission = await ws_auth.admit_async(self.scope)
        if admission.code:
            log.info("ws_refused", path=self.scope.get("path"), code=admission.code)
            if admission.code == CLOSE_RATE_LIMITED:
                await self._error(
                    "rate_limited",
                    "Too many connects; retry later.",
                    retry_after=round(admission.retry_after, 3),
                )
            await self.close(code=admission.code)
            return
        try:
            resume = parse_last_event_id(self.scope.get("query_string", b""))
        except BadLastEventId as exc:
            # Refused before joining the hub: nothing to leave behind.
            await self._error(
                "bad_last_event_id",
                f"last_event_id must be 1-16 digits, at most {MAX_EVENT_ID}; got {exc}.",
            )
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        grant = admission.grant
        assert grant is not None
        self.grant, self.user, self.key_scopes = grant, admission.user, admission.key_scopes
        self.organization_id = organization_id = grant.organization_id
        if self.direct is not None and not self.direct.install():
            self.direct = None
        ws_auth.get_guard().watch(self)
        try:
            async with ws_batches.join_gate():
                position = await get_hub().join(organization_id, self)
            if position is None:
                return  # Redis failed: the hub dropped this socket (4500)
            await self._catch_up(organization_id, resume, position)
        except Exception:
            # Redis gone during the join or the replay, or anything unexpected: leave the
            # hub (a connect that raises gets no disconnect) and tell the client to
            # resume, rather than a 1011 and a subscriber left behind.
            log.exception("ws_catch_up_failed", organization_id=organization_id)
            if not self.dropped:
                self.dropped = True
                self.pending.clear()
                await self._drop(CLOSE_STREAM)
            return
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

    async def _catch_up(self, organization_id: int, resume: int | None, position: int) -> None:
        """Replay after `resume` (or start from `position`, the log's id read after the
        hub subscribed this socket), then say hello."""
        if resume is not None:
            replay: Replay = await sync_to_async(replay_since)(
                organization_id=organization_id, last_event_id=resume
            )
            if replay.resync:
                await self.send(text_data=json.dumps({"type": "resync_required"}))
                # Also when `resume` is ahead of the counter: keeping it as last_sent
                # would silently drop every live frame below it. Frames after `position`
                # come live (subscribed before it was read), de-duplicated by id.
                self.last_sent = position
            else:
                self.last_sent = resume
                for event_id, frame in replay.frames:
                    await self.send(text_data=frame)
                    self.last_sent = event_id
        else:
            self.last_sent = position
        await self.send(text_data=json.dumps({"type": "hello", "last_event_id": self.last_sent}))

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

    def revoke(self, code: int) -> None:
        """Called by ws_auth.Guard: the principal lost access; close like a drop."""
        if self.dropped:
            return
        self.dropped = True
        self.live = False
        self.pending.clear()
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
        if self.organization_id is None or self.dropped:
            return
        if not await self._within_frame_rate():
            return
        if text_data is None or len(text_data) > MAX_CLIENT_FRAME:
            await self._error("bad_frame", f"Send JSON text frames of at most {MAX_CLIENT_FRAME}.")
            return
        try:
            frame = json.loads(text_data)
        except ValueError:
            frame = None
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind not in CLIENT_FRAME_TYPES:
            allowed = ", ".join(CLIENT_FRAME_TYPES)
            await self._error("bad_frame", f"Unknown frame type; allowed: {allowed}.")
            return
        assert isinstance(frame, dict)
        if kind == "ping":
            await self.send(text_data=json.dumps({"type": "pong", "last_event_id": self.last_sent}))
            return
        help_desk = frame.get("help_desk")
        if not isinstance(help_desk, str) or len(help_desk) > 64:
            await self._error("invalid", "'help_desk' (uuid) is required.")
            return
        # The HTTP rule: IsAgent (not an integration key) and the `agent` scope.
        if not is_agent(self.user) or not scopes.scopes_allow(self.key_scopes, scopes.AGENT):
            await self._error("forbidden", "Acting on a help desk needs an agent key or session.")
            return
        if kind == "typing" and self._typing_coalesced(help_desk):
            return  # one broadcast per help desk per interval is all the others need
        ok = await database_sync_to_async(self._help_desk_action)(kind, help_desk)
        if not ok:
            await self._error("not_found", "Help desk not found.")
        elif kind == "typing":
            self.typing_sent[help_desk] = time.monotonic()

    async def _within_frame_rate(self) -> bool:
        """Count one client frame against WS_FRAME_RATE; False when it must be dropped.

        A counter per socket, in this process: a socket lives in one process, so a
        Redis round trip per frame would buy nothing."""
        if self.frame_limit <= 0:
            return True
        now = time.monotonic()
        if now - self.frame_window_start >= self.frame_window:
            self.frame_window_start, self.frame_count = now, 0
        self.frame_count += 1
        if self.frame_count <= self.frame_limit:
            return True
        retry_after = round(self.frame_window_start + self.frame_window - now, 3)
        if self.frame_count == self.frame_limit + 1:
            await self._error("rate_limited", "Too many frames.", retry_after=retry_after)
        elif self.frame_count >= 2 * self.frame_limit:
            log.warning("ws_frame_flood", organization_id=self.organization_id)
            self.revoke(CLOSE_RATE_LIMITED)
        return False

    def _typing_coalesced(self, help_desk: str) -> bool:
        now = time.monotonic()
        interval = settings.WS_TYPING_INTERVAL
        if len(self.typing_sent) > 64:  # bounded: forget help desks not typed in lately
            self.typing_sent = {h: t for h, t in self.typing_sent.items() if now - t < interval}
        sent = self.typing_sent.get(help_desk)
        return sent is not None and now - sent < interval

    def _help_desk_action(self, kind: str, uuid: str) -> bool:
        principal = self.user
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
            reads.help_desk_mark_read(help_desk=help_desk, agent=principal)
        else:
            ephemeral_publish(
                organization_id=help_desk.organization_id,
                event_type="typing",
                data={"help_desk": str(help_desk.uuid), "agent": principal.username},
            )
        return True

    async def _error(self, code: str, message: str, **extra: Any) -> None:
        frame = {"type": "error", "code": code, "message": message, **extra}
        await self.send(text_data=json.dumps(frame))

    async def _leave(self) -> None:
        ws_auth.get_guard().forget(self)
        if self.organization_id is not None:
            await get_hub().leave(self.organization_id, self)

    async def disconnect(self, code: int) -> None:
        self.live = False
        if getattr(self, "writer", None) is not None:
            self.writer.cancel()  # type: ignore[union-attr]
        if getattr(self, "direct", None) is not None:
            self.direct.on_resume = None  # type: ignore[union-attr]
        await self._leave()
