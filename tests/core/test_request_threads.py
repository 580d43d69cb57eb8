"""core/request_threads.py: an HTTP request's sync code runs in a reused thread.

Django's ASGI handler used to start a new thread for every request (and one more to join
it). Behind `ReusedRequestThreads`, one request's thread-sensitive calls share one
thread (Django's rule), the next request borrows that same thread, concurrent requests
get threads of their own, and a thread still busy when its request ends (the client went
away while the view ran) is never lent again.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.urls import path

from core.asgi import http_app
from core.request_threads import ReusedRequestThreads


def _thread_name() -> str:
    return threading.current_thread().name


def thread_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_thread_name())


urlpatterns = [path("thread/", thread_view)]


def _scope(kind: str = "http", path: str = "/thread/") -> dict[str, Any]:
    return {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def _call(app: Any, scope: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope or _scope(), receive, send)
    return sent


def _body(sent: list[dict[str, Any]]) -> str:
    assert sent[0]["status"] == 200, sent
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode()


def test_one_request_runs_its_sync_calls_on_one_thread_and_the_next_borrows_it() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        first = await sync_to_async(_thread_name)()
        second = await sync_to_async(_thread_name)()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": f"{first} {second}".encode()})

    wrapped = ReusedRequestThreads(app)

    async def main() -> tuple[str, str]:
        return _body(await _call(wrapped)), _body(await _call(wrapped))

    one, two = asyncio.run(main())
    first, second = one.split()
    assert first == second, "one request's thread-sensitive calls left its thread"
    assert first.startswith("django-request-")
    assert two == one, "the second request did not reuse the first one's thread"
    assert len(wrapped.idle) == 1


def test_concurrent_requests_get_threads_of_their_own() -> None:
    both_inside = threading.Barrier(2, timeout=10)

    def meet() -> str:
        both_inside.wait()  # fails (BrokenBarrierError) if the two shared one thread
        return _thread_name()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        name = await sync_to_async(meet)()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": name.encode()})

    wrapped = ReusedRequestThreads(app)

    async def main() -> list[str]:
        results = await asyncio.gather(_call(wrapped), _call(wrapped))
        return [_body(sent) for sent in results]

    names = asyncio.run(main())
    assert len(set(names)) == 2
    assert len(wrapped.idle) == 2


def test_a_thread_still_busy_when_its_request_ends_is_not_lent_again() -> None:
    release = threading.Event()
    started = threading.Event()
    busy_names: list[str] = []

    def slow() -> None:
        busy_names.append(_thread_name())
        started.set()
        release.wait(10)

    async def abandoning_app(scope: Any, receive: Any, send: Any) -> None:
        # As Django's handler does when the client goes away: the view's task is
        # cancelled while its sync code goes on in the thread.
        task = asyncio.ensure_future(sync_to_async(slow)())
        while not started.is_set():
            await asyncio.sleep(0.001)
        task.cancel()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/slow/":
            await abandoning_app(scope, receive, send)
            return
        name = await sync_to_async(_thread_name)()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": name.encode()})

    wrapped = ReusedRequestThreads(app)

    async def main() -> str:
        await _call(wrapped, _scope(path="/slow/"))
        assert wrapped.idle == [], "a busy thread was put back for the next request"
        return _body(await _call(wrapped))

    try:
        next_name = asyncio.run(main())
    finally:
        release.set()
    assert busy_names and next_name != busy_names[0]


def test_websockets_pass_through_without_a_borrowed_thread() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(await sync_to_async(_thread_name)())

    wrapped = ReusedRequestThreads(app)
    asyncio.run(wrapped(_scope("websocket"), None, None))  # type: ignore[arg-type]
    assert seen and not seen[0].startswith("django-request-")
    assert wrapped.idle == []


@override_settings(ROOT_URLCONF=__name__)
def test_djangos_handler_runs_each_request_on_the_borrowed_thread() -> None:
    wrapped = ReusedRequestThreads(ASGIHandler())

    async def main() -> tuple[str, str]:
        return _body(await _call(wrapped)), _body(await _call(wrapped))

    one, two = asyncio.run(main())
    assert one.startswith("django-request-"), one
    assert two == one


def test_the_platforms_http_application_borrows_threads() -> None:
    # core.asgi wraps Django's handler and its static files (inside the trigger layer).
    layer: Any = http_app
    for _ in range(5):
        if isinstance(layer, ReusedRequestThreads):
            break
        layer = layer.application if hasattr(layer, "application") else layer.app
    assert isinstance(layer, ReusedRequestThreads)
    assert isinstance(layer.app, ASGIHandler)  # the static files handler is one
