"""Batched blocking calls for the websocket consumer's connects (reconnect storms).

`batched(fn).submit(item)`: calls of a blocking `fn(items) -> results` made from one
event loop go to the database thread in batches (chat/ws_auth.py admits connects this
way), and `join_gate()` bounds the hub joins in flight. See chat/ws_auth.py's module
docstring.

A batch runs through Channels' `database_sync_to_async`, which closes stale database
connections around it: the consumer (chat/consumers.py) skips Channels' own close before
every message, a thread hop per connect that cost more than the batched admission.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from channels.db import database_sync_to_async

T = TypeVar("T")
R = TypeVar("R")


class Batches(Generic[T, R]):
    """Calls of a blocking `fn(items) -> results` from one event loop, batched: one batch
    runs in the database thread at a time, and the calls arriving meanwhile go together
    in the next (at most `size`). A call never shares a batch that started before it
    was made, so it sees the state as of its own call or later."""

    size = 1000

    def __init__(self, fn: Callable[[list[T]], list[R]]) -> None:
        self._fn = fn
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._running: asyncio.Task[None] | None = None

    def submit(self, item: T) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if self._running is None or self._running.done():
            self._running = loop.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self.size], self._waiting[self.size :]
            try:
                results = await database_sync_to_async(self._fn)([item for item, _ in batch])
            except Exception as exc:  # e.g. the database is down: each call fails as alone
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # the socket went away meanwhile: cancelled
                    future.set_result(result)


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, Batches[Any, Any]]]
_by_loop = weakref.WeakKeyDictionary()


def batched(fn: Callable[[list[T]], list[R]]) -> Batches[T, R]:
    """The running event loop's batches of `fn` (one daphne process: one loop)."""
    per_loop = _by_loop.setdefault(asyncio.get_running_loop(), {})
    batches = per_loop.get(fn)
    if batches is None:
        batches = per_loop[fn] = Batches(fn)
    return batches


# At most this many hub joins run at once in a process. A log-open round trip takes a
# connection of the hub's Redis pool, which grows without bound: a storm admitted in one
# batch once opened one connection per socket, and Redis refused some (every socket of
# the process then closed, 4500). The joins in flight for one organization now share one
# log open (core/realtime.py), so this bounds the connections by the organizations
# joining at once; it no longer serializes one organization's storm 32 sockets at a time.
JOINS_IN_FLIGHT = 256
_join_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
_join_gates = weakref.WeakKeyDictionary()


def join_gate() -> asyncio.Semaphore:
    """The running loop's bound on concurrent hub joins (`async with join_gate(): ...`)."""
    loop = asyncio.get_running_loop()
    gate = _join_gates.get(loop)
    if gate is None:
        gate = _join_gates[loop] = asyncio.Semaphore(JOINS_IN_FLIGHT)
    return gate
