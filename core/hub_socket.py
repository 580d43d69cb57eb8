"""The sending half of a websocket fed by the hub, shared by agents' and visitors' sockets.

`HubSocket` is the base of chat/consumers.py (ChatConsumer, the agents' hub socket) and
widget/consumers.py (VisitorConsumer, the website widget's visitor socket). It owns how
frames reach the client; each subclass owns who may connect, the join and the replay,
and its client frames.

1. **Set up** (`_init_socket`, first thing in `connect`: the scope holds the
   `DirectSocket`, core/daphne_support.py). `_install_direct` when joining: without a
   `DirectSocket` (another ASGI server, or an install that does not apply) one writer
   task sends through the ASGI `send` instead.
2. **Deliver** (the hub's reader calls `deliver`; must not block). While the socket is
   live and its transport takes bytes, a batch is written at once (one write for the
   batch unless it overlaps what was sent). Otherwise its frames wait, as references to
   the shared `Frame`s, in `pending`: during the join and replay, while the transport's
   send buffer is full, or always without a `DirectSocket`. Past `max_pending`
   (WS_SEND_QUEUE) `deliver` answers False and the hub drops the socket (4408).
   A logged frame is written only when its id is above `last_sent` (a live frame seen
   during the replay comes twice); ephemeral frames (id 0: typing) always go.
3. **Go live** (`_go_live`, after the subclass sent `hello`): queued frames are flushed
   with no await in between, so the order is kept; then `on_resume` flushes whenever
   the transport drains.
4. **Close**: `drop` (the hub: 4408 slow, 4500 stream), `revoke` (the subclass's guard:
   access lost), a frame flood (twice WS_FRAME_RATE in one window: `ws_frame_flood`
   logged, 4429) and a failed join (`_close_now`) all stop sending at once, leave
   (`_leave`) and close.

Hooks: `_leave` (leave the hub and the guard), `_log_context` (the ids of log lines),
`_revoked` (say why before a revoke closes). `deliver`, `_send_now` and `_flush` are the
hub's hot path (10,000 frames/s to 1,000 sockets): no await, allocation or extra
attribute lookup belongs there.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from core.daphne_support import SCOPE_KEY, DirectSocket
from core.logging import get_logger
from core.ratelimit import rate
from core.realtime import Batch, Frame

log = get_logger(__name__)

CLOSE_SLOW = 4408  # fell behind: resume with last_event_id
CLOSE_RATE_LIMITED = 4429
CLOSE_STREAM = 4500  # event stream interrupted: resume with last_event_id


class HubSocket(AsyncWebsocketConsumer):
    # Events come from the hub (one pub/sub per process), not a per-socket channel.
    channel_layer_alias = "__none__"

    def _init_socket(self) -> None:
        """The send queue and the frame counter. Call first in `connect`."""
        self.pending: deque[tuple[int, Frame]] = deque()
        self.max_pending: int = settings.WS_SEND_QUEUE
        self.live = False
        self.dropped = False
        self.last_sent = 0
        self.writer: asyncio.Task[None] | None = None
        self.wakeup = asyncio.Event()
        self.direct: DirectSocket | None = self.scope.get(SCOPE_KEY)
        self.frame_limit, self.frame_window = rate("WS_FRAME_RATE")
        self.frame_window_start = 0.0
        self.frame_count = 0

    def _install_direct(self) -> None:
        """Take over the transport's flow control; without it, the writer task sends."""
        if self.direct is not None and not self.direct.install():
            self.direct = None

    def _go_live(self) -> None:
        """From here on, frames go out as they arrive. Call once `hello` is sent: what
        queued during the replay is flushed with no await before it, so the order is kept."""
        self.live = True
        if self.direct is not None:
            self.direct.on_resume = self._flush
            self._flush()
        else:
            self.writer = asyncio.create_task(self._write())
            self.wakeup.set()

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

    async def _write(self) -> None:
        """Without a direct socket (not daphne): one task sends through the ASGI `send`."""
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.pending and self.live:
                event_id, frame = self.pending.popleft()
                if event_id == 0:
                    await self.send(text_data=frame.text)
                elif event_id > self.last_sent:
                    await self.send(text_data=frame.text)
                    self.last_sent = event_id

    def drop(self, reason: str) -> None:
        """Called by the hub: fell behind ("slow") or the event stream broke."""
        if self._stop_sending():
            code = CLOSE_SLOW if reason == "slow" else CLOSE_STREAM
            asyncio.get_running_loop().create_task(self._drop(code))

    def revoke(self, code: int) -> None:
        """Called by the subclass's guard: the principal lost access; close like a drop."""
        if self._stop_sending():
            self._revoked(code)
            asyncio.get_running_loop().create_task(self._drop(code))

    def _stop_sending(self) -> bool:
        """Nothing more goes out but the close; False when already closing."""
        if self.dropped:
            return False
        self.dropped = True
        self.live = False
        self.pending.clear()
        return True

    async def _close_now(self, code: int) -> None:
        """Stop sending, leave and close (once), from the socket's own task."""
        if self._stop_sending():
            await self._drop(code)

    async def _drop(self, code: int) -> None:
        await self._leave()
        # The close frame queues behind whatever the client has not read; autobahn
        # aborts the TCP connection if the close handshake does not finish within
        # its closeHandshakeTimeout, which frees the buffer of a client that never reads.
        await self.close(code=code)

    # --- client side ---------------------------------------------------------------

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
        if self.frame_count == self.frame_limit + 1:
            retry_after = round(self.frame_window_start + self.frame_window - now, 3)
            await self._error("rate_limited", "Too many frames.", retry_after=retry_after)
        elif self.frame_count >= 2 * self.frame_limit and not self.dropped:
            log.warning("ws_frame_flood", **self._log_context())
            await self._close_now(CLOSE_RATE_LIMITED)
        return False

    async def _error(self, code: str, message: str, **extra: Any) -> None:
        frame = {"type": "error", "code": code, "message": message, **extra}
        await self.send(text_data=json.dumps(frame))

    async def disconnect(self, code: int) -> None:
        self.live = False
        if getattr(self, "writer", None) is not None:
            self.writer.cancel()  # type: ignore[union-attr]
        if getattr(self, "direct", None) is not None:
            self.direct.on_resume = None  # type: ignore[union-attr]
        await self._leave()

    # --- hooks ---------------------------------------------------------------------

    async def _leave(self) -> None:
        """Leave the hub and the guard; called again by `disconnect` (so idempotent)."""
        raise NotImplementedError

    def _log_context(self) -> dict[str, Any]:
        """The ids this socket's log lines carry (organization, inbox, ...)."""
        raise NotImplementedError

    def _revoked(self, code: int) -> None:
        """Said before a revoke closes the socket (a log line); nothing by default."""
