"""Visitor sockets on the realtime hub, indexed by visitor.

The hub (core/realtime.py) hands each organization's batches to its subscribers. Here
ONE subscriber per organization and process, a `DeskRouter`, stands for all of that
organization's visitor sockets: per batch it skips (by a prefix test) every frame no
visitor can see, translates the rest once (widget/frames.py) and hands each to the
sockets of the one visitor whose conversation it is. So an event costs one prefix test,
at most one parse, and O(sockets of that visitor) writes, however many visitor sockets
the process holds (10,000 idle ones cost nothing per event).

Index: visitor (client uuid) -> sockets, and help desk uuid -> visitor. A message event
names only its desk; the desks of a visitor are registered when their socket joins, and
a desk opened later (the visitor writes after a resolved conversation) is learnt from
its `update_helpdesk`, which names the client and is always published before the desk's
first message (chat.services.help_desk_open).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol

from core.logging import get_logger
from core.realtime import Batch, Frame, get_hub
from widget import frames

log = get_logger(__name__)


class VisitorSocket(Protocol):
    def deliver(self, batch: Batch) -> bool: ...

    def drop(self, reason: str) -> None: ...


class DeskRouter:
    """The hub's subscriber for one organization's visitor sockets in this process."""

    def __init__(self, organization_id: int) -> None:
        self.organization_id = organization_id
        self.sockets: dict[str, set[VisitorSocket]] = {}  # client uuid -> sockets
        self.desks: dict[str, str] = {}  # help desk uuid -> client uuid
        self.client_desks: dict[str, set[str]] = {}
        self.dead = False

    def add(self, client: str, desks: list[str], socket: VisitorSocket) -> None:
        self.sockets.setdefault(client, set()).add(socket)
        known = self.client_desks.setdefault(client, set())
        for desk in desks:
            self.desks[desk] = client
            known.add(desk)

    def remove(self, client: str, socket: VisitorSocket) -> None:
        group = self.sockets.get(client)
        if group is None:
            return
        group.discard(socket)
        if not group:
            del self.sockets[client]
            for desk in self.client_desks.pop(client, ()):
                self.desks.pop(desk, None)

    def deliver(self, batch: Batch) -> bool:
        per_client: dict[str, list[tuple[int, Frame]]] = {}
        for event_id, frame in batch.items:
            if not frames.relevant(frame.text):
                continue
            event = frames.translate(event_id, frame.text)
            if event is None:
                continue
            client = event.client or self.desks.get(event.help_desk)
            if client is None or client not in self.sockets:
                continue
            if event.client is not None and event.help_desk not in self.desks:
                self.desks[event.help_desk] = client  # a new desk of a local visitor
                self.client_desks[client].add(event.help_desk)
            per_client.setdefault(client, []).append(
                (event_id, Frame.from_payload(event.text.encode(), event.text))
            )
        for client, items in per_client.items():
            visitor_batch = Batch.of(items)
            for socket in tuple(self.sockets.get(client, ())):
                if not socket.deliver(visitor_batch):
                    log.warning(
                        "ws_subscriber_dropped",
                        organization_id=self.organization_id,
                        reason="slow",
                        visitor=True,
                    )
                    socket.drop("slow")
        return True  # the router itself never falls behind: its sockets do, one by one

    def drop(self, reason: str) -> None:
        # The hub lost its pub/sub connection: every visitor socket resumes like agents'.
        self.dead = True
        for group in list(self.sockets.values()):
            for socket in tuple(group):
                socket.drop(reason)


class VisitorHub:
    """Per event loop: the routers of the organizations with local visitor sockets."""

    def __init__(self) -> None:
        self.routers: dict[int, DeskRouter] = {}
        self._lock = asyncio.Lock()

    async def join(
        self, organization_id: int, client: str, desks: list[str], socket: VisitorSocket
    ) -> None:
        async with self._lock:
            router = self.routers.get(organization_id)
            if router is None or router.dead:
                router = self.routers[organization_id] = DeskRouter(organization_id)
                router.add(client, desks, socket)
                # Subscribes before the caller reads the replay log (as agents' sockets).
                await get_hub().join(organization_id, router)
            else:
                router.add(client, desks, socket)

    async def leave(self, organization_id: int, client: str, socket: VisitorSocket) -> None:
        async with self._lock:
            router = self.routers.get(organization_id)
            if router is None:
                return
            router.remove(client, socket)
            if not router.sockets:
                del self.routers[organization_id]
                await get_hub().leave(organization_id, router)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, VisitorHub] = (
    weakref.WeakKeyDictionary()
)


def get_visitor_hub() -> VisitorHub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = VisitorHub()
    return hub
