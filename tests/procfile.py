"""The platform started exactly as the Procfile runs it (honcho, every process), for
the fault tests of issue #10 (tests/core/test_process_resilience.py,
tests/mailing/test_schedule_timing.py).

Always on the embedded default (its own SQLite file and Valkey in a temporary VAR_DIR,
free ports), like tests/core/test_start.py, whatever the suite itself uses.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.conftest import ROOT, TEST_RATES, free_port, wait_until

HONCHO = Path(sys.executable).parent / "honcho"


def platform_env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    env_file = var_dir / ".env"
    if not env_file.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
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
        DATABASE_URL=f"sqlite:///{var_dir / 'db.sqlite3'}",
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
        return platform_env(self.var_dir, **self.extra_env)

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
