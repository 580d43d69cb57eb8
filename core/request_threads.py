"""Django's HTTP requests run their synchronous part in a reused thread.

Under ASGI, Django runs each request's middleware and view (sync code) through
`sync_to_async(thread_sensitive=True)` inside a `ThreadSensitiveContext` it opens per
request. With no executor given, that context creates a new one-thread executor for the
request (a new OS thread), and on exit starts one more thread to join it. So every
request started two threads; `Thread.start` waits, on the event loop, until the new
thread runs, which under load means waiting for the GIL: a profile of the widget
benchmark showed the loop blocked there ~7% of the time (BENCHMARKS.md).

asgiref's public `ThreadSensitiveContext(executor=...)` lets the caller own that
executor. This wrapper keeps idle one-thread executors and lends one to each HTTP
request; Django's own context then nests inside ours and creates nothing. The
semantics are Django's: one request's thread-sensitive code runs on one thread, one call
at a time. Websockets (Channels' consumers) are not touched.

An executor goes back to the idle list only when nothing it was given is still running
or queued: a request whose client went away is answered (Django cancels the task) while
its view may still run in the thread; that executor is shut down (its thread ends after
the view) instead of being lent to the next request.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext

ASGIApp = Callable[..., Awaitable[None]]

# Idle threads kept beyond this many are ended: a burst of concurrent requests does not
# leave its peak number of threads behind for good.
MAX_IDLE = 32

_numbers = itertools.count(1)


class RequestThread(ThreadPoolExecutor):
    """One thread; knows whether anything submitted to it has not finished."""

    def __init__(self) -> None:
        # A name of its own (django-request-<n>_0), so logs and profiles tell them apart.
        super().__init__(max_workers=1, thread_name_prefix=f"django-request-{next(_numbers)}")
        self.unfinished: set[Future[Any]] = set()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.unfinished.add(future)
        # Runs in the worker thread (or here if already done); set.discard is atomic.
        future.add_done_callback(self.unfinished.discard)
        return future


class ReusedRequestThreads:
    """ASGI wrapper: each HTTP request borrows an idle `RequestThread`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.idle: list[RequestThread] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        thread = self.idle.pop() if self.idle else RequestThread()
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.app(scope, receive, send)
        finally:
            if thread.unfinished or len(self.idle) >= MAX_IDLE:
                thread.shutdown(wait=False)  # the thread ends once its work is done
            else:
                self.idle.append(thread)
