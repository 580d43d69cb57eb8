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

How frames reach the client (the bounded send queue, the one write per batch, the drops
and the frame rate) is core/hub_socket.py, shared with the widget's visitor socket.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError

from chat import reads, selectors, ws_auth, ws_batches
from core import hub_socket, scopes
from core.access import is_agent
from core.errors import ApplicationError
from core.events import Replay, ephemeral_publish, replay_since
from core.hub_socket import HubSocket
from core.logging import get_logger
from core.realtime import get_hub

log = get_logger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = ws_auth.CLOSE_UNAUTHENTICATED
CLOSE_FORBIDDEN = ws_auth.CLOSE_FORBIDDEN
CLOSE_RATE_LIMITED = ws_auth.CLOSE_RATE_LIMITED
CLOSE_STREAM = hub_socket.CLOSE_STREAM

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


class ChatConsumer(HubSocket):
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
        self._init_socket()
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
        self._install_direct()
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
            await self._close_now(CLOSE_STREAM)
            return
        if not self.dropped:
            self._go_live()

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

    # --- HubSocket hooks ------------------------------------------------------------

    async def _leave(self) -> None:
        ws_auth.get_guard().forget(self)
        if self.organization_id is not None:
            await get_hub().leave(self.organization_id, self)

    def _log_context(self) -> dict[str, Any]:
        return {"organization_id": self.organization_id}
