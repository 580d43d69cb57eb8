"""Per-process fan-out of the organization event streams to local websockets.

Each web process holds ONE Redis pub/sub connection, subscribed to the live
channel of every organization that has at least one websocket in this process.
A published frame is read once and handed to every local subscriber as the same
string: no Redis round trip per websocket per event (what a channel-layer group
send costs), which is what keeps 1,000 agents on one process cheap.

A subscriber that cannot keep up (its queue is full) is dropped, counted and
logged; its client reconnects with `last_event_id` and replays from the log, so
nothing is lost. If the pub/sub connection fails (Redis restart), every
subscriber is closed the same way and the hub starts again on the next join.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge

from core.events import live_channel
from core.logging import get_logger
from core.redis import get_async_redis

log = get_logger(__name__)

WS_DROPPED = Counter(
    "ws_subscribers_dropped_total", "Websockets dropped for falling behind", ["reason"]
)
WS_CONNECTED = Gauge("ws_subscribers", "Websockets subscribed in this process")


class Subscriber(Protocol):
    def deliver(self, event_id: int, frame: str) -> bool:
        """Queue a frame without blocking. False means the subscriber is full."""

    def drop(self, reason: str) -> None:
        """Close the connection so the client resumes from its last event id."""


class Hub:
    def __init__(self) -> None:
        self._groups: dict[int, set[Subscriber]] = {}
        self._redis: aioredis.Redis | None = None
        self._pubsub: aioredis.client.PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def join(self, organization_id: int, subscriber: Subscriber) -> None:
        async with self._lock:
            if self._pubsub is None:
                self._redis = get_async_redis()
                self._pubsub = self._redis.pubsub()
            group = self._groups.get(organization_id)
            if group is None:
                group = self._groups[organization_id] = set()
                # Subscribe before the caller reads the replay log, so an event
                # published in between is seen live (and de-duplicated by id).
                await self._pubsub.subscribe(live_channel(organization_id))
            group.add(subscriber)
            WS_CONNECTED.inc()
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(self._pubsub))

    async def leave(self, organization_id: int, subscriber: Subscriber) -> None:
        async with self._lock:
            group = self._groups.get(organization_id)
            if group is None or subscriber not in group:
                return
            group.discard(subscriber)
            WS_CONNECTED.dec()
            if not group:
                del self._groups[organization_id]
                if self._pubsub is not None:
                    with contextlib.suppress(Exception):
                        await self._pubsub.unsubscribe(live_channel(organization_id))

    def subscriber_count(self, organization_id: int) -> int:
        return len(self._groups.get(organization_id, ()))

    async def _read(self, pubsub: aioredis.client.PubSub) -> None:
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if message is None or message["type"] != "message":
                    continue
                self._dispatch(message["channel"], message["data"])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("hub_pubsub_failed")
            await self._reset()

    def _dispatch(self, channel: bytes, payload: bytes) -> None:
        # channel is b"events:<org>:live"; payload is b"<id> <frame>"
        organization_id = int(channel.split(b":", 2)[1])
        raw_id, _, raw_frame = payload.partition(b" ")
        event_id = int(raw_id)
        frame = raw_frame.decode()
        for subscriber in tuple(self._groups.get(organization_id, ())):
            if not subscriber.deliver(event_id, frame):
                WS_DROPPED.labels("slow").inc()
                log.warning("ws_subscriber_dropped", organization_id=organization_id, reason="slow")
                subscriber.drop("slow")

    async def _reset(self) -> None:
        async with self._lock:
            groups, self._groups = self._groups, {}
            pubsub, self._pubsub = self._pubsub, None
            client, self._redis = self._redis, None
            self._reader = None
        for group in groups.values():
            for subscriber in group:
                WS_DROPPED.labels("stream").inc()
                WS_CONNECTED.dec()
                subscriber.drop("stream")
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()
        with contextlib.suppress(Exception):
            if client is not None:
                await client.aclose()


_hubs: dict[int, Hub] = {}


def get_hub() -> Hub:
    """The hub of the running event loop (one per process in daphne)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(id(loop))
    if hub is None:
        hub = _hubs[id(loop)] = Hub()
    return hub
