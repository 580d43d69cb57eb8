"""Test doubles for outbound calls (core/outbound.py): a local HTTP receiver that records
what reaches it, and a DNS whose answers a test scripts (`socket.getaddrinfo`, in this
process only). No traffic ever leaves loopback: scripted public answers are only checked,
never connected to, by the code under test.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    """What a local HTTP server received; `url` is its base (`http://127.0.0.1:<port>`)."""

    url: str
    port: int
    calls: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    sni: list[str | None] = field(default_factory=list)


@contextmanager
def http_receiver(
    host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None, **answer: Any
) -> Iterator[Receiver]:
    """A threaded HTTP server answering every request with `status` (and `headers`);
    https with `tls` (a server context), whose SNI callback records names in `sni`."""
    record = Receiver(url="", port=0, **answer)

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            record.calls.append(
                {"method": self.command, "path": self.path, "headers": dict(self.headers)}
                | {"body": body}
            )
            self.send_response(record.status)
            for name, value in record.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _any

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    if tls is not None:

        def on_sni(_sock: Any, name: str | None, _ctx: Any) -> None:
            record.sni.append(name)

        tls.sni_callback = on_sni
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    record.port = int(server.server_address[1])
    record.url = f"{'https' if tls else 'http'}://{host}:{record.port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()


class FakeDNS:
    """`socket.getaddrinfo` for scripted names: each call for a name takes the next answer
    of its script (the last one repeats); every other name goes to the real resolver.
    `lookups` lists the scripted names in the order they were asked for."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self._real = real
        self._scripts: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def script(self, name: str, *answers: list[str]) -> None:
        self._scripts[name] = [list(answer) for answer in answers]

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self._scripts:
            return self._real(host, port, *args, **kwargs)
        self.lookups.append(name)
        script = self._scripts[name]
        answer = script.pop(0) if len(script) > 1 else script[0]
        if not answer:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        infos = []
        for ip in answer:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            sockaddr = (ip, int(port or 0), 0, 0) if ":" in ip else (ip, int(port or 0))
            infos.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return infos


def install_fake_dns(monkeypatch: Any) -> FakeDNS:
    fake = FakeDNS(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    return fake
