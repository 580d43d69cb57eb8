"""Helpers of the scale-out test (tests/core/test_scale_out.py): HAProxy from the shipped
contrib/deploy/haproxy.cfg, agents' websockets that reconnect like a real client, and
which web process holds how many of them.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import resource
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import connect

from tests.conftest import ROOT, wait_until

HAPROXY_TEMPLATE = ROOT / "contrib" / "deploy" / "haproxy.cfg"


def render_haproxy(template: str, port: int, servers: list[int], fd_limit: int) -> str:
    """The shipped config with the test's ports: the public bind on loopback, and the
    `web` backend's servers replaced by the test's web processes. Everything else (the
    balancing, the timeouts, the health check) is the shipped one, except a global
    `maxconn` this machine cannot hold: HAProxy needs two file descriptors per
    connection and refuses to start when the hard limit is lower (a container without
    CAP_SYS_RESOURCE cannot raise it; the distribution's unit, as root, can)."""
    lines = template.splitlines()
    for i, line in enumerate(lines):
        found = re.fullmatch(r"(\s*)maxconn (\d+)", line)
        if found and 2 * int(found[2]) + 100 > fd_limit and i < lines.index("defaults"):
            lines[i] = f"{found[1]}maxconn {(fd_limit - 100) // 2}"
    binds = [i for i, line in enumerate(lines) if re.fullmatch(r"\s*bind :80", line)]
    assert len(binds) == 1, "contrib/deploy/haproxy.cfg: expected one `bind :80`"
    lines[binds[0]] = f"    bind 127.0.0.1:{port}"
    sections = [line for line in lines if re.match(r"(global|defaults|frontend|backend)\b", line)]
    assert sections[-1] == "backend web", "contrib/deploy/haproxy.cfg: `backend web` last"
    kept = [line for line in lines if not re.match(r"\s*server\s", line)]
    assert len(kept) < len(lines), "contrib/deploy/haproxy.cfg: no server line to replace"
    kept += [f"    server web{n} 127.0.0.1:{p} check" for n, p in enumerate(servers)]
    return "\n".join(kept) + "\n"


@contextmanager
def haproxy(binary: str, workdir: Path, port: int, servers: list[int]) -> Iterator[str]:
    """HAProxy in the foreground on `port`; yields its base URL once /health/ answers."""
    config = workdir / "haproxy.cfg"
    _, fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    config.write_text(render_haproxy(HAPROXY_TEMPLATE.read_text(), port, servers, fd_limit))
    check = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log = open(workdir / "haproxy.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.poll() is not None or _answers(f"{base}/health/"), timeout=20)
        assert process.poll() is None, (workdir / "haproxy.log").read_text()
        yield base
    finally:
        process.kill()
        process.wait(10)
        log.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def established(port: int) -> int:
    """TCP connections established to a local listening port (the balancer's, to one
    web process), read from /proc/net/tcp."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            count += 1
    return count


@dataclass
class Socket:
    """An agent's websocket that behaves like the documented client: on any close it
    reconnects (through the balancer) with `last_event_id`, after a jittered backoff.

    `timeline` holds what it got: ("hello", id), ("resync",), ("event", id, type, uuid).
    """

    url: str
    stop: threading.Event
    timeline: list[tuple[Any, ...]] = field(default_factory=list)
    connects: int = 0
    last: int | None = None
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            query = "" if self.last is None else f"&last_event_id={self.last}"
            try:
                conn = connect(self.url + query, open_timeout=10, close_timeout=1)
            except (OSError, WebSocketException, TimeoutError):
                time.sleep(random.uniform(0.1, 0.4))
                continue
            self.connects += 1
            with contextlib.suppress(ConnectionClosed, OSError):
                while not self.stop.is_set():
                    try:
                        raw = conn.recv(timeout=0.5)
                    except TimeoutError:
                        continue
                    self._record(json.loads(raw))
            conn.close()
            time.sleep(random.uniform(0.05, 0.3))

    def _record(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "hello":
            self.last = frame["last_event_id"]
            self.timeline.append(("hello", frame["last_event_id"]))
        elif kind == "resync_required":
            self.timeline.append(("resync",))
        elif "id" in frame:
            self.last = frame["id"]
            uuid = json.loads(frame["data"]).get("uuid")
            self.timeline.append(("event", frame["id"], kind, uuid))

    def hellos(self) -> int:
        return sum(1 for item in list(self.timeline) if item[0] == "hello")

    def messages(self) -> list[str]:
        """The uuids of the new_message events it received, in order."""
        return [i[3] for i in list(self.timeline) if i[0] == "event" and i[2] == "new_message"]

    def resyncs(self) -> int:
        return sum(1 for item in list(self.timeline) if item[0] == "resync")

    def resumed_after_resync(self) -> bool:
        """Told to resync, and live again since (a hello after the last resync)."""
        kinds = [item[0] for item in list(self.timeline)]
        return "resync" in kinds and "hello" in kinds[len(kinds) - kinds[::-1].index("resync") :]

    def gaps(self) -> list[str]:
        """Every break of the id sequence not announced by a `resync_required`: an event
        that is not the one after the previous, or a hello that does not name it."""
        found: list[str] = []
        expect: int | None = None
        resynced = False
        for item in list(self.timeline):
            if item[0] == "resync":
                resynced = True
            elif item[0] == "hello":
                if expect is not None and not resynced and item[1] != expect:
                    found.append(f"hello {item[1]} after event {expect}")
                expect, resynced = item[1], False
            else:
                if expect is not None and item[1] != expect + 1:
                    found.append(f"event {item[1]} after {expect}")
                expect = item[1]
        return found
