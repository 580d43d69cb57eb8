"""Per-process fan-out of the organization event streams to local websockets.

Each web process holds ONE Redis pub/sub connection, subscribed to the live
channel of every organization that has at least one websocket in this process.
A published frame is read once, encoded once (`Frame`: the text and the complete
websocket wire frame), and handed to every local subscriber: no Redis round trip
per websocket per event (what a channel-layer group send costs), no task switch
per websocket per event, no per-socket JSON or UTF-8 encoding.

Subscribers are the websocket consumers: the agents' (chat/consumers.py) directly, the
visitors' (widget/consumers.py) through the widget's router (widget/hub.py), both on one
send queue (core/hub_socket.py `HubSocket`). Under daphne each has a
`DirectSocket` (core/daphne_support.py, where all daphne/Twisted/autobahn specifics
live): it writes the prepared wire bytes straight to the connection while the send
buffer is empty, and pauses the subscriber when the client stops reading; frames
then wait, as shared references, in the subscriber's bounded pending queue.

A subscriber that cannot keep up (pending queue full) is dropped, counted and
logged; its client reconnects with `last_event_id` and replays from the log, so
nothing is lost. If the pub/sub connection fails (Redis restart), every
subscriber is closed the same way and the hub starts again on the next join.

`join` returns the organization's log position (core/events.py event_log_open), read
after the subscription, so the consumer's `hello` names it with no gap. The joins of a
reconnect storm share that round trip: joins that arrive while one organization's open
is in flight wait for the next one (which starts after they subscribed), so 5,000
sockets of one organization cost a handful of opens, not 5,000.
See docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import weakref
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge, Histogram

from core.events import channel_organization, event_log_open_async, live_channel
from core.logging import get_logger
from core.redis import get_async_redis
from core.resilience import REDIS_ERRORS

log = get_logger(__name__)

WS_DROPPED = Counter(
    "ws_subscribers_dropped_total", "Websockets dropped for falling behind", ["reason"]
)
# Multiprocess /metrics: the sum over the live web processes (core/metrics.py).
WS_CONNECTED = Gauge(
    "ws_subscribers", "Websockets subscribed (all live web processes)", multiprocess_mode="livesum"
)
WS_FANOUT = Histogram(
    "ws_fanout_seconds",
    "Time to hand one batch of frames to every local subscriber of an organization",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)


@dataclass(frozen=True, slots=True)
class Frame:
    """One server frame, encoded once for all subscribers."""

    text: str
    wire: bytes  # the complete unmasked websocket text frame (header + UTF-8 payload)

    @classmethod
    def from_payload(cls, payload: bytes, text: str | None = None) -> Frame:
        return cls(text=payload.decode() if text is None else text, wire=encode_frame(payload))


def encode_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A final, unmasked server frame (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive frames of one organization, read from pub/sub in one go.

    `wire` is all of them back to back, so a live socket gets one write (one
    syscall) per batch instead of one per frame. `min_id` is the smallest logged
    id in the batch (0 if all are ephemeral), for de-duplication.
    """

    items: tuple[tuple[int, Frame], ...]
    wire: bytes
    min_id: int
    max_id: int

    @classmethod
    def of(cls, items: list[tuple[int, Frame]]) -> Batch:
        ids = [event_id for event_id, _ in items if event_id]
        wire = items[0][1].wire if len(items) == 1 else b"".join(f.wire for _, f in items)
        return cls(tuple(items), wire, min(ids, default=0), max(ids, default=0))


class Subscriber(Protocol):
    def deliver(self, batch: Batch) -> bool:
        """Send or queue frames without blocking. False means the subscriber is full."""

    def drop(self, reason: str) -> None:
        """Close the connection so the client resumes from its last event id."""


# --- the hub ---------------------------------------------------------------------------------


MAX_BATCH = 256
LINGER = 0.003  # seconds the hub waits for more frames before writing a batch
FANOUT_SLICE = 100  # sockets written between two turns of the event loop


class Hub:
    def __init__(self) -> None:
        self._groups: dict[int, set[Subscriber]] = {}
        self._redis: aioredis.Redis | None = None
        self._pubsub: aioredis.client.PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # Per organization: the log open not sent yet, which joins arriving now share
        # (with the client to send it on), and whether one is in flight (the next one is
        # sent when it has answered).
        self._next_open: dict[int, tuple[asyncio.Future[int], aioredis.Redis]] = {}
        self._opening: set[int] = set()
        self._open_tasks: set[asyncio.Task[None]] = set()

    async def join(self, organization_id: int, subscriber: Subscriber) -> int | None:
        """Subscribe; the organization's log position read after it (None: Redis failed,
        the subscriber was dropped)."""
        try:
            return await self._join(organization_id, subscriber)
        except REDIS_ERRORS as exc:
            # Redis is down: the socket is closed like every other one in the outage
            # (4500), and the client resumes with last_event_id once it is back.
            log.warning("hub_join_failed", organization_id=organization_id, error=repr(exc))
            await self._reset()
            WS_DROPPED.labels("stream").inc()
            subscriber.drop("stream")
            return None

    async def _join(self, organization_id: int, subscriber: Subscriber) -> int:
        async with self._lock:
            if self._pubsub is None:
                self._redis = get_async_redis(reconnect=False)  # a gap must close sockets
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
            client = self._redis
        # Outside the lock (one round trip, shared): the caller's `hello` then names a
        # real log position even for an organization with no event yet, so a resume
        # from it replays (core/events.py event_log_open).
        assert client is not None
        return await self._log_open(client, organization_id)

    async def _log_open(self, client: aioredis.Redis, organization_id: int) -> int:
        """`event_log_open_async` from a round trip that starts after this call."""
        pending = self._next_open.get(organization_id)
        if pending is None:
            pending = self._next_open[organization_id] = (
                asyncio.get_running_loop().create_future(),
                client,
            )
            if organization_id not in self._opening:
                self._start_open(organization_id)
        # Shielded: a caller that goes away must not cancel the others' answer.
        return await asyncio.shield(pending[0])

    def _start_open(self, organization_id: int) -> None:
        # From here on, later joins wait for a new open: this one may be sent before
        # their subscription.
        future, client = self._next_open.pop(organization_id)
        self._opening.add(organization_id)
        task = asyncio.get_running_loop().create_task(
            self._run_open(client, organization_id, future)
        )
        self._open_tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._open_tasks.discard)

    async def _run_open(
        self, client: aioredis.Redis, organization_id: int, future: asyncio.Future[int]
    ) -> None:
        try:
            position = await event_log_open_async(client, organization_id=organization_id)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nothing logged if every caller went away
        else:
            future.set_result(position)
        finally:
            self._opening.discard(organization_id)
            if organization_id in self._next_open:
                self._start_open(organization_id)

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
        loop = asyncio.get_running_loop()
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if message is None:
                    continue
                # Take whatever else arrives within LINGER (typically the update_helpdesk
                # published right after a new_message) so each socket gets one write, one
                # syscall, for all of it: a socket write costs far more than the wait.
                messages = [message]
                deadline = loop.time() + LINGER
                while len(messages) < MAX_BATCH:
                    more = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=max(0.0, deadline - loop.time())
                    )
                    if more is None:
                        break
                    messages.append(more)
                await self._dispatch_all(messages)
        except asyncio.CancelledError:
            raise
        except REDIS_ERRORS as exc:
            # An outage, not a bug: one line per process, every socket closed with 4500.
            log.warning("hub_pubsub_failed", error=repr(exc))
            await self._reset()
        except Exception:
            log.exception("hub_pubsub_failed")
            await self._reset()

    async def _dispatch_all(self, messages: list[dict[str, Any]]) -> None:
        # Keep each organization's frames in order; organizations are independent.
        by_org: dict[int, list[tuple[int, Frame]]] = {}
        for message in messages:
            if message.get("type") != "message":
                continue
            # data is b"<id> <frame>"
            organization_id = channel_organization(message["channel"])
            raw_id, _, raw_frame = message["data"].partition(b" ")
            by_org.setdefault(organization_id, []).append(
                (int(raw_id), Frame.from_payload(raw_frame))
            )
        for organization_id, items in by_org.items():
            await self._dispatch(organization_id, Batch.of(items))

    async def _dispatch(self, organization_id: int, batch: Batch) -> None:
        group = self._groups.get(organization_id)
        if not group:
            return
        started = time.perf_counter()
        subscribers = tuple(group)
        for start in range(0, len(subscribers), FANOUT_SLICE):
            if start:
                # Let the event loop run between slices: a fan-out to thousands of
                # sockets must not hold up HTTP requests (including the POST whose
                # event this is) for its whole duration. The reader awaits the whole
                # batch before reading the next, so frames keep their order.
                await asyncio.sleep(0)
            for subscriber in subscribers[start : start + FANOUT_SLICE]:
                try:
                    delivered = subscriber.deliver(batch)
                except Exception:
                    # One broken connection must not take the hub (and every other
                    # socket of the process) down with it.
                    log.exception("ws_deliver_failed", organization_id=organization_id)
                    WS_DROPPED.labels("error").inc()
                    subscriber.drop("error")
                    continue
                if not delivered:
                    WS_DROPPED.labels("slow").inc()
                    log.warning(
                        "ws_subscriber_dropped",
                        organization_id=organization_id,
                        reason="slow",
                        event_id=batch.max_id,
                    )
                    subscriber.drop("slow")
        WS_FANOUT.observe(time.perf_counter() - started)

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


# Keyed by the loop itself, weakly: a loop's id can be reused by a later loop (tests
# run one per asyncio.run), which would inherit a hub whose connection is dead.
_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    """The hub of the running event loop (one per process in daphne)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub
