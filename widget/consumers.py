"""The visitor's socket: /ws/widget/<inbox token>/.

1. **Connect.** The page's `Origin` must be one of the inbox's allowed origins and the
   client address within WIDGET_IP_RATE, else an error frame and 4403 / 4429 (an
   unknown inbox is 4403 too).
2. **Authenticate with the first frame**, `{"type": "auth", "token": <visitor token>,
   "last_event_id": N}` (N optional), within WIDGET_AUTH_TIMEOUT seconds, else an
   `auth_timeout` error frame and 4401.
   In a frame, not the URL: a query string lands in proxy and access logs and in the
   browser's history, and the visitor token is a bearer credential for the visitor's
   conversations. A bad token is 4401; too many connects of one visitor (WIDGET_VISITOR_RATE)
   4429.
3. **Resume** exactly as agents' sockets (chat/consumers.py): the organization's event
   ids, a replay of this visitor's frames after N (`resync_required` when N is no longer
   kept), then `{"type": "hello", "last_event_id": M}`, then live frames, with no gap and
   no duplicate. Only this visitor's frames are sent (widget/frames.py).
4. **Client frames**: `ping` (-> `pong`), `typing` (to the agents, ephemeral: not in the
   log, at most one per WS_TYPING_INTERVAL), `read` (the agents' messages become `read`).
   At most WS_FRAME_RATE per socket, as for agents.

While open, widget/guard.py re-checks every WS_AUTH_RECHECK_SECONDS that the inbox (with
the same public token) and the visitor still exist: else 4403 / 4401.

Close codes: 4400 bad frame or last_event_id, 4401, 4403, 4408 fell behind, 4429,
4500 event stream interrupted (resume with last_event_id).

How frames reach the visitor (the bounded send queue, the one write per batch, the drops
and the frame rate) is core/hub_socket.py, shared with the agents' socket.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest

from chat.models import HelpDesk
from core import hub_socket
from core.errors import ApplicationError
from core.events import replay_since
from core.hub_socket import HubSocket
from core.logging import get_logger
from core.ratelimit import hit, rate
from core.throttles import client_address
from widget import frames, selectors, services
from widget.guard import get_visitor_guard
from widget.hub import get_visitor_hub
from widget.models import Visitor, WebInbox

log = get_logger(__name__)

MAX_CLIENT_FRAME = 2048
MAX_EVENT_ID = 2**53 - 1
CLOSE_BAD_REQUEST, CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN = 4400, 4401, 4403
CLOSE_RATE_LIMITED, CLOSE_STREAM = hub_socket.CLOSE_RATE_LIMITED, hub_socket.CLOSE_STREAM
_DESKS_INDEXED = 50  # a visitor's latest desks registered at join (older ones are closed)


def _headers(scope: dict[str, Any]) -> dict[bytes, bytes]:
    return dict(scope.get("headers", []))


def _admit(scope: dict[str, Any]) -> tuple[WebInbox | None, int, float]:
    """(inbox, refusal close code or 0, retry_after). Blocking: Redis and the database."""
    request = HttpRequest()
    request.META["REMOTE_ADDR"] = str((scope.get("client") or ("unknown", 0))[0])
    limit, window = rate("WIDGET_IP_RATE")
    wait = hit(f"widget:ip:{client_address(request)}", limit=limit, window=window)
    if wait:
        return None, CLOSE_RATE_LIMITED, wait
    try:
        inbox = selectors.web_inbox_by_token(token=scope["url_route"]["kwargs"]["token"])
    except ApplicationError:
        return None, CLOSE_FORBIDDEN, 0.0
    origin = _headers(scope).get(b"origin", b"").decode(errors="replace")
    if origin not in inbox.allowed_origins:
        return None, CLOSE_FORBIDDEN, 0.0
    return inbox, 0, 0.0


def _authenticate(inbox: WebInbox, token: str) -> tuple[Visitor | None, list[str], int, float]:
    try:
        visitor = services.visitor_from_token(web_inbox=inbox, token=token)
    except ApplicationError:
        return None, [], CLOSE_UNAUTHENTICATED, 0.0
    limit, window = rate("WIDGET_VISITOR_RATE")
    wait = hit(f"widget:visitor:{visitor.uuid.hex}", limit=limit, window=window)
    if wait:
        return None, [], CLOSE_RATE_LIMITED, wait
    desks = HelpDesk.objects.filter(client_id=visitor.client_id).order_by("-pk")
    uuids = [str(u) for u in desks.values_list("uuid", flat=True)[:_DESKS_INDEXED]]
    return visitor, uuids, 0, 0.0


class VisitorConsumer(HubSocket):
    inbox: WebInbox | None = None
    visitor: Visitor | None = None
    client_key: str = ""
    joined = False

    async def connect(self) -> None:
        self._init_socket()
        self.desks: set[str] = set()
        self.typing_at = 0.0
        await self.accept()
        inbox, code, retry_after = await sync_to_async(_admit)(self.scope)
        if inbox is None:
            await self._refuse(code, retry_after)
            return
        self.inbox = inbox
        self.auth_timer = asyncio.get_running_loop().call_later(
            settings.WIDGET_AUTH_TIMEOUT, self._auth_timeout
        )

    def _auth_timeout(self) -> None:
        if self.visitor is None and not self.dropped:
            self.dropped = True
            asyncio.get_running_loop().create_task(self._refuse_late())

    async def _refuse_late(self) -> None:
        # Said before closing, like every other refusal: a client (or whoever debugs one)
        # learns why the socket went, not only a close code it shares with a bad token.
        seconds = settings.WIDGET_AUTH_TIMEOUT
        await self._error("auth_timeout", f"No auth frame within {seconds:g} s.")
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def _refuse(self, code: int, retry_after: float = 0.0) -> None:
        self.dropped = True
        if code == CLOSE_RATE_LIMITED:
            await self._error(
                "rate_limited", "Too many connects.", retry_after=round(retry_after, 3)
            )
        elif code == CLOSE_FORBIDDEN:
            await self._error("forbidden", "This site may not use this widget.")
        elif code == CLOSE_UNAUTHENTICATED:
            await self._error("unauthenticated", "Invalid or expired visitor token.")
        await self.close(code=code)

    # --- authentication, join and resume --------------------------------------------

    async def _auth(self, frame: dict[str, Any]) -> None:
        self.auth_timer.cancel()
        assert self.inbox is not None
        token, resume = frame.get("token"), frame.get("last_event_id")
        if resume is not None and (
            not isinstance(resume, int)
            or isinstance(resume, bool)
            or not 0 <= resume <= MAX_EVENT_ID
        ):
            await self._error(
                "bad_last_event_id", f"last_event_id: an integer, 0 to {MAX_EVENT_ID}."
            )
            self.dropped = True
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        if not isinstance(token, str) or len(token) > 400:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        visitor, desks, code, retry_after = await sync_to_async(_authenticate)(self.inbox, token)
        if visitor is None:
            await self._refuse(code, retry_after)
            return
        self.visitor, self.client_key, self.desks = visitor, str(visitor.client.uuid), set(desks)
        get_visitor_guard().watch(self)
        self._install_direct()
        organization_id = self.inbox.organization_id
        try:
            self.joined = True
            await get_visitor_hub().join(organization_id, self.client_key, desks, self)
            await self._catch_up(organization_id, resume)
        except Exception:
            log.exception("ws_catch_up_failed", organization_id=organization_id, visitor=True)
            await self._close_now(CLOSE_STREAM)
            return
        if not self.dropped:
            self._go_live()

    def _mine(self, event_id: int, raw: str) -> str | None:
        if not frames.relevant(raw):
            return None
        event = frames.translate(event_id, raw)
        if event is None:
            return None
        if event.client is not None:
            if event.client != self.client_key:
                return None
            self.desks.add(event.help_desk)
        elif event.help_desk not in self.desks:
            return None
        return event.text

    async def _catch_up(self, organization_id: int, resume: int | None) -> None:
        if resume is not None:
            replay = await sync_to_async(replay_since)(
                organization_id=organization_id, last_event_id=resume
            )
            if replay.resync:
                await self.send(text_data=json.dumps({"type": "resync_required"}))
                self.last_sent = await sync_to_async(services.current_event_id)(organization_id)
            else:
                self.last_sent = resume
                for event_id, raw in replay.frames:
                    text = self._mine(event_id, raw)
                    if text is not None:
                        await self.send(text_data=text)
                # Past every replayed frame, the visitor's or not: the next resume
                # starts here instead of scanning them again.
                if replay.frames:
                    self.last_sent = replay.frames[-1][0]
        else:
            self.last_sent = await sync_to_async(services.current_event_id)(organization_id)
        await self.send(text_data=json.dumps({"type": "hello", "last_event_id": self.last_sent}))

    def grant(self) -> tuple[int, str, int]:
        """What the socket was admitted on (widget/guard.py re-checks it)."""
        assert self.inbox is not None and self.visitor is not None
        return self.inbox.pk, self.inbox.token, self.visitor.pk

    # --- client frames ---------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.inbox is None or (self.dropped and self.visitor is None):
            return
        if not await self._within_frame_rate():
            return
        try:
            frame = (
                json.loads(text_data or "") if len(text_data or "") <= MAX_CLIENT_FRAME else None
            )
        except ValueError:
            frame = None
        kind = frame.get("type") if isinstance(frame, dict) else None
        if self.visitor is None:
            if kind != "auth":
                await self._refuse(CLOSE_UNAUTHENTICATED)
                return
            assert isinstance(frame, dict)
            await self._auth(frame)
            return
        if kind == "ping":
            await self.send(text_data=json.dumps({"type": "pong", "last_event_id": self.last_sent}))
        elif kind == "typing":
            now = time.monotonic()
            # Counted only once told: typing before the first message (no conversation
            # yet) must not hold back the first real one.
            if now - self.typing_at >= settings.WS_TYPING_INTERVAL and await sync_to_async(
                services.visitor_typing
            )(visitor=self.visitor):
                self.typing_at = now
        elif kind == "read":
            await sync_to_async(services.visitor_read)(visitor=self.visitor)
        else:
            await self._error("bad_frame", "Unknown frame type; allowed: ping, typing, read.")

    # --- HubSocket hooks ------------------------------------------------------------

    async def _leave(self) -> None:
        if self.visitor is not None:
            get_visitor_guard().forget(self)
        if self.joined and self.inbox is not None:
            self.joined = False
            await get_visitor_hub().leave(self.inbox.organization_id, self.client_key, self)

    def _log_context(self) -> dict[str, Any]:
        inbox = self.inbox
        return {
            "organization_id": inbox.organization_id if inbox else None,
            "web_inbox_id": inbox.pk if inbox else None,
            "visitor": True,
        }

    def _revoked(self, code: int) -> None:
        """widget/guard.py found the inbox or the visitor gone."""
        log.info("widget_socket_revoked", code=code, web_inbox_id=self.grant()[0])

    async def disconnect(self, code: int) -> None:
        timer = getattr(self, "auth_timer", None)
        if timer is not None:
            timer.cancel()
        await super().disconnect(code)
