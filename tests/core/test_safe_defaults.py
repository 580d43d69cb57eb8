"""Safe defaults (issue 9 item 6): no production process on a published secret,
`check --deploy` clean under the documented production settings, /metrics behind a token.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test import Client

from tests.conftest import ROOT, Process, free_port

DOCS = ROOT / "docs" / "security.md"


def _env(**extra: str) -> dict[str, str]:
    """This test run's environment, minus what the case under test sets itself. Values
    set here win over a developer's .env (the settings never overwrite the environment)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    env.update(DJANGO_SETTINGS_MODULE="core.settings", LOG_LEVEL="WARNING", **extra)
    return env


@pytest.mark.parametrize(
    "secret_key", ["", "insecure-dev-key-run-contrib-generate-env", "change-me"]
)
def test_the_web_refuses_to_start_without_a_secret_key(secret_key: str) -> None:
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "daphne", "-p", str(port), "core.asgi:application"],
        cwd=ROOT,
        env=_env(SECRET_KEY=secret_key, DEBUG="False"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "contrib/generate_env.py" in result.stderr


@pytest.mark.parametrize("command", ["run_worker", "run_cron"])
def test_the_worker_and_cron_refuse_to_start_without_a_secret_key(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", command],
        cwd=ROOT,
        env=_env(SECRET_KEY="", DEBUG="False", REDIS_URL="redis://127.0.0.1:1/0"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "contrib/generate_env.py" in result.stderr


def test_debug_runs_without_a_secret_key() -> None:
    # development (generate_env.py writes DEBUG=True) is not refused
    result = subprocess.run(
        [sys.executable, "-c", "import core.asgi"],
        cwd=ROOT,
        env=_env(SECRET_KEY="", DEBUG="True"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def _generated(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / ".env"
    subprocess.run(
        [sys.executable, "contrib/generate_env.py", "--path", str(path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            values[name] = value
    return values


def test_generate_env_writes_a_secret_key_and_a_metrics_token(tmp_path: Path) -> None:
    from core.safe_defaults import secret_key_is_insecure

    values = _generated(tmp_path)
    assert not secret_key_is_insecure(values["SECRET_KEY"])
    assert len(values["SECRET_KEY"]) >= 50
    assert len(values["METRICS_TOKEN"]) >= 32


def _documented_production_settings() -> dict[str, str]:
    """The ```env block of docs/security.md's "Safe defaults" section."""
    section = DOCS.read_text().split("## Safe defaults", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```env\n(.*?)```", section, re.S)
    assert block, "docs/security.md lost its production settings block"
    values = {}
    for line in block.group(1).splitlines():
        name, _, value = line.strip().partition("=")
        values[name] = value
    return values


def _check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_check_deploy_is_clean_under_the_documented_production_settings(tmp_path: Path) -> None:
    production = _documented_production_settings()
    generated = _generated(tmp_path)
    production["SECRET_KEY"] = generated["SECRET_KEY"]
    production["METRICS_TOKEN"] = generated["METRICS_TOKEN"]
    result = _check_deploy(_env(**production))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_under_the_development_defaults(tmp_path: Path) -> None:
    # the same check can fail: without the block, Django lists what is missing
    env = _env(SECRET_KEY=_generated(tmp_path)["SECRET_KEY"], DEBUG="False")
    for name in _documented_production_settings():
        if name.startswith(("SECURE_", "SESSION_", "CSRF_COOKIE")):
            env.pop(name, None)
    result = _check_deploy(env)
    assert result.returncode != 0
    assert "security.W008" in result.stderr + result.stdout  # SECURE_SSL_REDIRECT


# --- /metrics ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_without_a_configured_token_is_refused_to_everyone(
    client: Client, settings: Any
) -> None:
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert response.status_code == 403
    assert "METRICS_TOKEN" in response.json()["error"]["message"]
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", "Bearer ", "Basic dGVzdC1tZXRyaWNzLXRva2Vu", "x"]
)
def test_metrics_refuses_a_missing_or_wrong_token(
    client: Client, settings: Any, authorization: str | None
) -> None:
    settings.METRICS_TOKEN = "the-scraper-token"
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"# TYPE" not in response.content


def test_metrics_over_http_answer_only_the_scraper(
    start_web: Callable[..., Process], agent: Any
) -> None:
    web = start_web(METRICS_TOKEN="the-scraper-token")
    anonymous = httpx.get(f"{web.url}/metrics")
    with agent.http(web.url) as api:  # an API key is not the scraper's token
        agent_key = api.get("/metrics")
    scraper = httpx.get(f"{web.url}/metrics", headers={"Authorization": "Bearer the-scraper-token"})
    assert (anonymous.status_code, agent_key.status_code, scraper.status_code) == (401, 401, 200)
    assert "# TYPE" in scraper.text
