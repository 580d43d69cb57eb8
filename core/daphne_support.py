"""Everything that depends on daphne, Twisted or autobahn internals, in one place.

The platform is served by daphne (Twisted + autobahn underneath). Three things need
more than the ASGI interface gives, and each relies on names those libraries do not
promise to keep. They are pinned in requirements.txt (daphne, twisted, autobahn,
txaio, each with a note), and a test fails when one stops applying.

1. **Body limit before buffering** (`BoundedWebRequest`, installed by `install()`).
   daphne hands a request to the app only once Twisted has the whole body (spooled to
   a temporary file past 100 kB), so nothing in ASGI or Django can refuse a 256 MiB
   body in time. The subclass refuses it in Twisted's own callbacks: from the declared
   `Content-Length` as soon as the headers are parsed, or, for a chunked body, once the
   bytes received pass `MAX_REQUEST_BODY`. It answers 413 with the JSON error shape and
   `Connection: close`, half-closes, discards what the client still sends for
   `LINGER_SECONDS` (so the client reads the answer, not a reset), then drops the
   connection. Relies on:
   - daphne 4.2.3: the module global `daphne.http_protocol.WebRequest`, which
     `HTTPFactory.buildProtocol` reads for each connection (replaced here);
   - Twisted 26.10.0: `twisted.web.http.Request.gotLength`, `handleContentChunk`,
     `requestReceived`, its `content` file and `channel.transport` (overridden/read).
   Tests: tests/core/test_daphne_support.py and test_bounded_input.py (413s from a
   real daphne, declared and chunked; the install).
2. **Content-Type parsing memoized** (`install()`). Twisted parses every POST's
   `Content-Type` with `email.message`, only to spot form bodies daphne never uses:
   ~0.1 ms of CPU per request, a quarter of the event loop on a stream of small
   monitoring posts. It is a pure function of a handful of distinct header values.
   Relies on Twisted 26.10.0's private `twisted.web.http._parseContentType`.
   Test: tests/escalation/test_fastpath.py (memoized and still right).
3. **Direct websocket writes with backpressure** (`DirectSocketMiddleware`,
   `DirectSocket`). The hub (core/realtime.py) encodes a frame once for all sockets;
   `DirectSocket.write` hands the prepared wire bytes to the kernel itself when
   Twisted's buffer for the connection is empty (no writer registration, reactor turn
   or autobahn framing per socket) and otherwise goes through autobahn's `sendData`
   behind what is buffered, so bytes keep the order of the calls. It also registers as
   the transport's push producer (Twisted's public `IConsumer.registerProducer`), so a
   client that stops reading pauses it instead of growing the buffer. Relies on:
   - daphne 4.2.3: the ASGI `send` is `functools.partial(Server.handle_reply,
     protocol)`; the middleware recognises it by the name `handle_reply` and takes
     the protocol from its first argument;
   - autobahn 26.11.1: the protocol's `state` / `STATE_OPEN`, `send_queue` (chopped
     frames still waiting) and `sendData` (raw bytes, no framing);
   - Twisted 26.10.0: the TCP transport's `socket`, `dataBuffer`, `offset` and
     private `_tempDataLen` (together: "nothing buffered"), `connected`,
     `disconnecting`.
   When any of these is missing the middleware or `DirectSocket` falls back (no
   `DirectSocket`: the consumer sends through the ASGI `send`; no raw transport:
   `sendData` only): slower, never wrong. `ws_frames_written_total{path}` counts
   frames per path (`direct`: the shortcut wrote to the kernel; `buffered`: through
   autobahn), so a dashboard, and tests/core/test_daphne_support.py on a real daphne,
   see whether the shortcut is engaged; tests/chat/test_ws_slow_client.py covers the
   producer.

txaio is autobahn's async layer; it is pinned with autobahn, nothing here calls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from prometheus_client import Counter

from core.logging import get_logger

log = get_logger(__name__)

WS_PAUSED = Counter(
    "ws_send_paused_total", "Times a websocket's send buffer filled up (client not reading)"
)
WS_WRITES = Counter(
    "ws_frames_written_total",
    "Frame batches written to websockets by the hub, by path (direct: straight to the "
    "kernel; buffered: through autobahn behind Twisted's buffer)",
    ["path"],
)
_WRITES_DIRECT = WS_WRITES.labels("direct")
_WRITES_BUFFERED = WS_WRITES.labels("buffered")

# Seconds a refused connection keeps reading (and discarding) before it is dropped.
LINGER_SECONDS = 2.0


def install() -> None:
    """Install 1 and 2 into daphne/Twisted; idempotent. Call from the ASGI module.

    The imports are here, not at the top: this module is also imported outside daphne
    (the consumer, tests), and Twisted must not be pulled in before daphne has chosen
    its reactor."""
    from daphne import http_protocol
    from twisted.web import http as twisted_http

    if not getattr(http_protocol.WebRequest, "bounded", False):
        http_protocol.WebRequest = _bounded_request_class(http_protocol.WebRequest)
    parse = getattr(twisted_http, "_parseContentType", None)
    if parse is not None and not hasattr(parse, "cache_info"):
        twisted_http._parseContentType = functools.lru_cache(maxsize=256)(parse)


# --- 1. body size in daphne's protocol layer -------------------------------------------


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def _bounded_request_class(base: type) -> type:
    class BoundedWebRequest(base):  # type: ignore[valid-type,misc]
        """daphne's request, refusing a body past `MAX_REQUEST_BODY` while it arrives."""

        bounded = True
        _refused = False
        _received = 0

        def gotLength(self, length: int | None) -> None:
            if length is not None and length > settings.MAX_REQUEST_BODY:
                self.content = io.BytesIO()  # not the temporary file Twisted would open
                self._refuse()
                return
            super().gotLength(length)

        def handleContentChunk(self, data: bytes) -> None:
            if self._refused:
                return  # discarded while lingering
            self._received += len(data)
            if self._received > settings.MAX_REQUEST_BODY:
                self._refuse()
                return
            super().handleContentChunk(data)

        def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
            if self._refused:
                return  # answered already; the app never sees it
            super().requestReceived(command, path, version)

        def _refuse(self) -> None:
            from twisted.internet import reactor  # daphne's, installed by now

            self._refused = True
            self.content.close()  # nothing more is written to it
            body = error_body(
                "request_too_large",
                f"The request body exceeds {settings.MAX_REQUEST_BODY} bytes.",
            )
            transport = self.channel.transport
            transport.write(
                b"HTTP/1.1 413 Request Entity Too Large\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                b"Connection: close\r\n\r\n" + body
            )
            half_close = getattr(transport, "loseWriteConnection", None)
            if half_close is not None:
                half_close()
                clock: Any = reactor  # Twisted's stubs type the global reactor loosely
                clock.callLater(LINGER_SECONDS, transport.abortConnection)
            else:
                transport.loseConnection()

    return BoundedWebRequest


# --- 3. direct writes to daphne's websocket connections ----------------------------------


class _WriteCounts:
    """Writes per path, added to `ws_frames_written_total` once per event-loop turn: a
    Prometheus increment (a lock and an mmap write in multiprocess mode) per socket per
    batch would cost a good part of what the write itself costs."""

    direct = 0
    buffered = 0
    scheduled = False

    def add(self, *, direct: bool) -> None:
        if direct:
            self.direct += 1
        else:
            self.buffered += 1
        if not self.scheduled:
            self.scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (a unit test): count now
                self.flush()

    def flush(self) -> None:
        self.scheduled = False
        direct, buffered, self.direct, self.buffered = self.direct, self.buffered, 0, 0
        if direct:
            _WRITES_DIRECT.inc(direct)
        if buffered:
            _WRITES_BUFFERED.inc(buffered)


_writes = _WriteCounts()


class DirectSocket:
    """Writes prepared frames to one daphne websocket connection, with backpressure.

    `paused` is True while the connection's outgoing buffer is over Twisted's limit
    (64 KiB beyond what the kernel accepted): the client is not reading. The owner
    sets `on_resume`, called when the buffer has drained.
    """

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.transport = protocol.transport
        self.paused = False
        self.on_resume: Callable[[], None] | None = None
        # The fast path needs a plain TCP transport (not TLS-wrapped) with Twisted's
        # FileDescriptor buffer; anything else goes through autobahn's sendData.
        self._raw = all(
            hasattr(self.transport, a) for a in ("socket", "dataBuffer", "offset", "_tempDataLen")
        )

    def install(self) -> bool:
        """Become the transport's push producer (replacing daphne's spent HTTP channel)."""
        transport = self.transport
        try:
            if getattr(transport, "producer", None) is not None:
                transport.unregisterProducer()
            transport.registerProducer(self, True)
        except Exception:
            log.exception("ws_producer_install_failed")
            return False
        return True

    @property
    def is_open(self) -> bool:
        protocol = self.protocol
        return bool(protocol.state == protocol.STATE_OPEN)

    def write(self, wire: bytes) -> None:
        """Send a prepared frame; a no-op once the websocket is closing or closed."""
        protocol, transport = self.protocol, self.transport
        if protocol.state != protocol.STATE_OPEN:
            # Closing (nothing may follow a close frame) or closed: the consumer's
            # disconnect, which removes it from the hub, has not run yet.
            return
        sock = getattr(transport, "socket", None) if self._raw else None
        if (
            sock is not None
            and transport.connected
            and not transport.disconnecting
            and not transport._tempDataLen
            and len(transport.dataBuffer) == transport.offset
            and not protocol.send_queue
        ):
            # Twisted's buffer is empty, so nothing written earlier is waiting: hand the
            # frame to the kernel now, and only buffer what it does not take. Saves the
            # writer registration, a reactor turn and autobahn's per-call logging.
            _writes.add(direct=True)
            try:
                sent = sock.send(wire)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # let Twisted's own write path notice and report the error
            if sent < len(wire):
                transport.write(wire[sent:])
            return
        _writes.add(direct=False)
        protocol.sendData(wire)

    # IPushProducer, called by Twisted
    def pauseProducing(self) -> None:
        if not self.paused:
            self.paused = True
            WS_PAUSED.inc()
            # Like daphne's HTTP channel did: stop reading too, so a client that does
            # not read cannot make us queue answers (pongs, errors) for it.
            with contextlib.suppress(Exception):
                self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        if self.paused:
            self.paused = False
            with contextlib.suppress(Exception):
                self.transport.resumeProducing()
            if self.on_resume is not None:
                self.on_resume()

    def stopProducing(self) -> None:
        self.paused = True
        self.on_resume = None


def daphne_protocol(send: Any) -> Any:
    """daphne's websocket protocol behind an ASGI `send`, or None for other servers."""
    if not isinstance(send, functools.partial) or not send.args:
        return None
    if getattr(send.func, "__name__", "") != "handle_reply":
        return None
    protocol = send.args[0]
    needed = ("sendData", "transport", "state", "STATE_OPEN", "send_queue")
    return protocol if all(hasattr(protocol, a) for a in needed) else None


SCOPE_KEY = "realtime.direct_socket"


class DirectSocketMiddleware:
    """ASGI middleware: puts a `DirectSocket` in websocket scopes served by daphne.

    Outermost in core/asgi.py, so the `send` it sees is daphne's own."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            protocol = daphne_protocol(send)
            if protocol is not None and getattr(protocol, "transport", None) is not None:
                scope = {**scope, SCOPE_KEY: DirectSocket(protocol)}
        return await self.inner(scope, receive, send)
