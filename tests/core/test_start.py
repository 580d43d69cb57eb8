"""The README's start path, for real: generate_env.py, migrate, demo_data, then `honcho
start` on the Procfile (embedded Valkey, daphne, the worker with its scheduler, cron and
the sender simulator). The demo agent's printed key sends a message that comes back
`sent` through the worker and the simulator.

It always runs on the embedded default (its own SQLite file and Valkey in a temporary
VAR_DIR, free ports), whatever DATABASE_URL / REDIS_URL the suite itself uses.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, free_port, wait_until
from tests.procfile import manage


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    # Secrets and the sender's JWT, as the README's first command writes them.
    env_file = tmp_path / ".env"
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
    # contrib/start.sh puts the virtual environment first on PATH: the Procfile says `python`
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    web_port, sender_port = free_port(), free_port()
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        VAR_DIR=str(tmp_path / "var"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "var" / "prometheus"),
        EMBEDDED_REDIS_PORT=str(free_port()),
        WEB_PORT=str(web_port),
        SENDER_URL=f"http://127.0.0.1:{sender_port}",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{web_port}",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def _status(http: httpx.Client, help_desk: str, uuid: str) -> Any:
    history = http.get(f"/api/help-desks/{help_desk}/history/").json()
    return next((m["status"] for m in history if m["uuid"] == uuid), None)


@pytest.mark.timeout(240)
def test_honcho_starts_the_platform_and_a_message_goes_out(tmp_path: Path) -> None:
    honcho = Path(sys.executable).parent / "honcho"
    if not honcho.exists():
        pytest.fail("honcho is not installed next to this Python (requirements.txt has it)")
    env = _env(tmp_path)

    # given a migrated database and the demo, as contrib/start.sh makes them
    manage(env, "migrate", "--no-input", "-v", "0")
    printed = manage(env, "demo_data")
    agent_key = re.search(r"agent API key:\s+(\S+)", printed)
    assert agent_key, printed
    assert "username: agent" in printed

    # when honcho starts every process of the Procfile
    process = subprocess.Popen(
        [str(honcho), "start"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # to stop honcho and all it started at once
    )
    base = f"http://127.0.0.1:{env['WEB_PORT']}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, "honcho exited"
            try:
                return httpx.get(f"{base}/health/", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=90)

        # then the demo agent's key works, and a message goes web -> worker -> sender
        http = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {agent_key[1]}"}, timeout=10
        )
        desks = http.get("/api/help-desks/", params={"organization": "demo"})
        assert desks.status_code == 200, desks.text
        assert desks.json(), "the demo has conversations"
        help_desk = desks.json()[0]["uuid"]
        sent = http.post("/api/send-message/", data={"help_desk": help_desk, "message": "hi"})
        assert sent.status_code == 201, sent.text
        uuid = sent.json()["uuid"]
        wait_until(lambda: _status(http, help_desk, uuid) == "sent", timeout=60)
        # and the console and the API docs are served by the same process
        assert httpx.get(f"{base}/docs/", timeout=10).status_code == 200
        assert httpx.get(f"{base}/", timeout=10, follow_redirects=True).status_code == 200
        assert process.poll() is None, "a Procfile process exited (honcho stops them all)"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        output = process.stdout.read().decode(errors="replace") if process.stdout else ""
        print(output[-5000:])
