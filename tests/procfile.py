"""The platform started exactly as the Procfile runs it (honcho, every process), for
the fault tests of issue #10 (tests/core/test_process_resilience.py,
tests/mailing/test_schedule_timing.py).

Always on its own embedded Valkey (in a temporary VAR_DIR, on a free port), so a test
can stop Redis even when the suite runs on a system Redis; on SQLite in VAR_DIR, or,
when the suite runs on PostgreSQL (DATABASE_URL), on a fresh database of the same server.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis

from tests.conftest import ROOT, TEST_RATES, free_port, wait_until

HONCHO = Path(sys.executable).parent / "honcho"


def _database_url(var_dir: Path, proxy_port: int | None = None) -> str:
    """SQLite in VAR_DIR; on a PostgreSQL suite run (DATABASE_URL), a database of its own
    on the same server (dropped by `Platform.close`). The same on a restart."""
    saved = var_dir / "database_url"
    if saved.exists():
        return saved.read_text()
    suite = os.environ.get("DATABASE_URL", "")
    if suite.startswith(("postgres://", "postgresql://")):
        import psycopg

        parts = urlsplit(suite)
        name = f"platform_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        netloc = parts.netloc
        if proxy_port is not None:  # through the test's TcpProxy, which it can cut
            netloc = f"{parts.netloc.rsplit('@', 1)[0]}@127.0.0.1:{proxy_port}"
        url = parts._replace(path=f"/{name}", netloc=netloc).geturl()
    else:
        url = f"sqlite:///{var_dir / 'db.sqlite3'}"
    saved.write_text(url)
    return url


def _database_drop(url: str) -> None:
    if not url.startswith(("postgres://", "postgresql://")):
        return
    import psycopg

    parts = urlsplit(url)
    server = urlsplit(os.environ.get("DATABASE_URL") or url)  # not through a cut proxy
    with psycopg.connect(server._replace(path="/postgres").geturl(), autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


def platform_env(var_dir: Path, proxy_port: int | None = None, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    var_dir.mkdir(parents=True, exist_ok=True)
    env_file = var_dir / ".env"
    if not env_file.exists():
        subprocess.run(
            [sys.executable, "contrib/generate_env.py", "--path", str(env_file)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    for line in env_file.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            env[name] = value
    ports_file = var_dir / "ports"
    if not ports_file.exists():  # the same ports on a restart (the same VAR_DIR)
        ports_file.write_text(" ".join(str(free_port()) for _ in range(3)))
    web_port, sender_port, redis_port = ports_file.read_text().split()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        DATABASE_URL=_database_url(var_dir, proxy_port),
        VAR_DIR=str(var_dir / "var"),
        PROMETHEUS_MULTIPROC_DIR=str(var_dir / "var" / "prometheus"),
        EMBEDDED_REDIS_PORT=redis_port,
        WEB_PORT=web_port,
        SENDER_URL=f"http://127.0.0.1:{sender_port}",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{web_port}",
        LOG_LEVEL="INFO",
        LOG_FORMAT="console",
        PYTHONUNBUFFERED="1",
        **TEST_RATES,
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@dataclass
class Platform:
    """honcho running the Procfile on one VAR_DIR; start it again on the same one."""

    var_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    db_proxy: TcpProxy | None = None
    agent_key: str = ""
    integration_key: str = ""
    process: subprocess.Popen[bytes] | None = None
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def prepare(self) -> None:
        """migrate + demo_data, as contrib/start.sh does (once per VAR_DIR)."""
        env = self.env()
        manage(env, "migrate", "--no-input", "-v", "0")
        printed = manage(env, "demo_data")
        found = re.search(r"agent API key:\s+(\S+)", printed)
        assert found, printed
        self.agent_key = found[1]
        found = re.search(r"integration API key:\s+(\S+)", printed)
        assert found, printed
        self.integration_key = found[1]

    def env(self) -> dict[str, str]:
        port = self.db_proxy.port if self.db_proxy is not None else None
        return platform_env(self.var_dir, port, **self.extra_env)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.env()['WEB_PORT']}"

    @property
    def redis_port(self) -> int:
        return int(self.env()["EMBEDDED_REDIS_PORT"])

    def start(self) -> None:
        assert HONCHO.exists(), "honcho is not installed next to this Python"
        self.lines = []
        self.process = subprocess.Popen(
            [str(HONCHO), "start"],
            cwd=ROOT,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
        self._reader.start()
        wait_until(self.healthy, timeout=60, interval=0.2)

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            self.lines.append(raw.decode(errors="replace"))

    def output(self) -> str:
        return "".join(self.lines)

    def healthy(self) -> bool:
        assert self.process is not None and self.process.poll() is None, (
            "honcho exited:\n" + self.output()[-4000:]
        )
        try:
            return httpx.get(f"{self.base}/health/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def pids(self) -> dict[str, int]:
        """The pid honcho started for each Procfile process (its last start)."""
        found: dict[str, int] = {}
        for line in self.lines:
            match = re.search(r"([\w.]+) started \(pid=(\d+)\)", line)
            if match:
                found[match[1]] = int(match[2])
        return found

    def redis(self) -> redis.Redis:
        return redis.Redis(port=self.redis_port, socket_timeout=2)

    def valkey_pid(self) -> int:
        return int(self.redis().info("server")["process_id"])

    def http(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base,
            headers={"Authorization": f"Bearer {key or self.agent_key}"},
            timeout=10,
        )

    def ws_url(self, **query: Any) -> str:
        params = "&".join(f"{k}={v}" for k, v in {"token": self.agent_key, **query}.items())
        return f"ws://127.0.0.1:{self.env()['WEB_PORT']}/ws/chat/demo/?{params}"

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        """Signal honcho (as Ctrl-C does); its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self._reader is not None:
            self._reader.join(5)
        return int(self.process.returncode)

    def kill(self) -> None:
        """Last resort (a failed test): everything honcho started, at once."""
        if self.process is not None and self.process.poll() is None:
            self.stop(signal.SIGTERM, timeout=20)

    def close(self) -> None:
        """Stop it (if running) and drop its PostgreSQL database, if it has one."""
        self.kill()
        _database_drop(self.env()["DATABASE_URL"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive: honcho reaps its children, so this is rare, but check.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


class TcpProxy:
    """A TCP forwarder the test can cut: `down()` closes the listener and every open
    connection (the database is gone for everyone), `up()` listens again on the port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
