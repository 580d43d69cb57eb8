"""Browser fixtures for the console: Playwright (sync) driving Debian's Chromium headless.

Playwright's sync API keeps an asyncio loop "running" in the test thread, which makes
Django refuse ORM calls (SynchronousOnlyOperation). While this module's browser is up the
test process sets DJANGO_ALLOW_ASYNC_UNSAFE; the servers it starts get it cleared again
(`start_web(**SAFE)`), so they keep Django's check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import ROOT, wait_until

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ASGI_APP = "core.asgi:application"
SAFE = {"DJANGO_ALLOW_ASYNC_UNSAFE": ""}  # keep Django's async-safety check in servers


def browser_required() -> bool:
    """CI must not pass by skipping every browser test: REQUIRE_BROWSER=1 (set by
    .ci/run) or CI=true turns a missing Chromium into a failure."""
    return os.environ.get("REQUIRE_BROWSER") == "1" or os.environ.get("CI", "").lower() == "true"


def chromium_path() -> str | None:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        reason = f"chromium not installed at {CHROMIUM} (contrib/test.sh installs it with apt)"
        if browser_required():
            pytest.fail(f"{reason}; REQUIRE_BROWSER=1 / CI=true: browser tests must run")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        yield browser
        browser.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def servers(
    request: Any,
    django_db_setup: None,
    sender_simulator: Any,
    _use_test_redis: None,
    browser: Any,
) -> Iterator[dict[str, Any]]:
    """One daphne and one RQ worker per test module (starting them per test is most of the
    time a browser test takes). Tests stay isolated: each one's rows are flushed and get
    new ids, so their organizations' event streams never meet. A module that sets
    `SHARED_WORKER = False` starts its own worker(s) instead."""
    from django.conf import settings

    from tests.conftest import JWT_SECRET, Process, _http_ok, free_port, subprocess_env

    names = ("SENDER_URL", "SENDER_TOKEN", "SENDER_BACKOFF_BASE", "SENDER_BACKOFF_MAX")
    saved = {name: getattr(settings, name) for name in (*names, "SENDER_TIMEOUT")}
    # the same values as the `sender` fixture gives each test
    settings.SENDER_URL = sender_simulator.url
    settings.SENDER_TOKEN = jwt.encode({"sub": "test"}, JWT_SECRET, algorithm="HS256")
    settings.SENDER_BACKOFF_BASE, settings.SENDER_BACKOFF_MAX = 0.2, 1.0
    settings.SENDER_TIMEOUT = 2.0
    started: list[Any] = []
    try:
        port = free_port()
        web = Process(
            process=subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), ASGI_APP],
                cwd=ROOT,
                env=subprocess_env(**SAFE),
            ),
            url=f"http://127.0.0.1:{port}",
        )
        started.append(web)
        worker = None
        if getattr(request.module, "SHARED_WORKER", True):
            worker = Process(
                process=subprocess.Popen(
                    [sys.executable, "manage.py", "run_worker"],
                    cwd=ROOT,
                    env=subprocess_env(**SAFE),
                )
            )
            started.append(worker)
        # A deadline, not a wait: generous, since a failed start fails every test of the module.
        wait_until(
            lambda: web.process.poll() is not None or _http_ok(f"{web.url}/health/"), timeout=60
        )
        assert web.process.poll() is None, "daphne exited at start"
        yield {"web": web, "worker": worker}
    finally:
        for process in started:
            process.stop()
        for name, value in saved.items():
            setattr(settings, name, value)


@pytest.fixture
def web_env() -> dict[str, str]:
    """Extra environment for a web process of the test's own (override with parametrize)."""
    return {}


@pytest.fixture
def web(
    transactional_db: None,
    servers: dict[str, Any],
    start_web: Callable[..., Any],
    sender: Any,
    web_env: dict[str, str],
) -> Iterator[Any]:
    """A daphne serving the console: the module's, or the test's own when `web_env` is set."""
    yield start_web(**SAFE, **web_env) if web_env else servers["web"]
    _let_the_worker_finish()


@pytest.fixture
def worker(transactional_db: None, servers: dict[str, Any], sender: Any) -> Iterator[Any]:
    """The module's RQ worker (a test needing other settings starts its own)."""
    yield servers["worker"]
    _let_the_worker_finish()


def _let_the_worker_finish(timeout: float = 15.0) -> None:
    """Before the test's rows are flushed: the module's worker outlives the test, and a
    job of this test still running (a delivery locking its message row) while the flush
    TRUNCATEs the tables can deadlock on PostgreSQL, which then aborts the flush and the
    next test finds this one's rows. Wait (bounded, never failing the test) until no job
    is queued or running."""
    from rq.registry import StartedJobRegistry

    from core.jobs import ALL_QUEUES, get_queue

    def idle() -> bool:
        queues = [get_queue(name) for name in ALL_QUEUES]
        return all(len(q) == 0 and len(StartedJobRegistry(queue=q)) == 0 for q in queues)

    deadline = time.monotonic() + timeout
    while not idle() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture
def new_page(browser: Any, web: Any) -> Iterator[Callable[..., Any]]:
    """Factory: a fresh browser context (its own cookies) with one page, logged in or not."""
    contexts: list[Any] = []

    def _new(username: str | None = None, *, viewport: dict[str, int] | None = None) -> Any:
        context = browser.new_context(
            # 1280x800: the desktop size the screenshots are looked at in (issue 13)
            base_url=web.url,
            viewport=viewport or {"width": 1280, "height": 800},
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.errors = []  # uncaught page errors: a test can assert there were none
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        if username is not None:
            login(page, username)
        return page

    yield _new
    for context in contexts:
        context.close()


def login(page: Any, username: str) -> None:
    from playwright.sync_api import expect

    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-" + username)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "live")


def cut_off(container: Any, selector: str) -> list[str]:
    """The elements matching `selector` inside `container` (a locator) that stick out of
    its content box (into its padding or past it): cut off, crammed against the edge or
    scrolled out of sight. Named by id, else by their text. What is not shown (no box)
    is not counted."""
    return container.evaluate(
        """(box, selector) => {
            const s = getComputedStyle(box);
            const outer = box.getBoundingClientRect();
            const left = outer.left + parseFloat(s.borderLeftWidth) + parseFloat(s.paddingLeft);
            const right = outer.right - parseFloat(s.borderRightWidth) - parseFloat(s.paddingRight);
            return Array.from(box.querySelectorAll(selector))
                .filter(e => { const r = e.getBoundingClientRect();
                               return r.width > 0 && r.height > 0 &&
                                      (r.left < left - 0.5 || r.right > right + 0.5); })
                .map(e => e.id || e.textContent.trim());
        }""",
        selector,
    )


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def post_seed_triggers(web: Any, key: str, *, times: int) -> None:
    """Post the demo rule's two triggers (the seed's own payload) `times` times."""
    seed = {
        "gatilhos": [{"servico": "login", "retorno": "503"}, {"servico": "login", "retorno": "404"}]
    }
    for _ in range(times):
        response = httpx.post(
            f"{web.url}/api/triggers/", json=seed, headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 202, response.text


def panel_activity(web: Any, agent: Any, make_client: Callable[..., Any]) -> dict[str, Any]:
    """Give the agent's organization one of each panel's things, through the public APIs
    (a worker routes, evaluates and sends): an assistance request (topic `sales`), an
    incident (the escalation demo rule, its triggers posted 3 times) and a mailing."""
    from core.services import api_key_create
    from escalation.demo import create

    org = agent.organization
    for n in range(3):
        make_client(org, tag="vip", name=f"{org.slug} client {n}")
    create(organization=org)
    _, bot_key = api_key_create(name="bot", organization=org)
    _, monitoring_key = api_key_create(name="monitoring", organization=org)
    response = httpx.post(
        f"{web.url}/assistance/",
        json={"topic": "sales", "description": f"{org.slug} needs a quote"},
        headers={"Authorization": f"Bearer {bot_key}"},
    )
    assert response.status_code == 202, response.text
    assistance_id = response.json()["id"]
    post_seed_triggers(web, monitoring_key, times=3)
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    response = httpx.post(
        f"{web.url}/api/mailings/",
        json={
            "organization": org.slug,
            "name": f"{org.slug} campaign",
            "text": "Hi {{ name }}",
            "start_at": (now - timedelta(minutes=1)).isoformat(),
            "end_at": (now + timedelta(hours=1)).isoformat(),
            "tags": ["vip"],
        },
        headers={"Authorization": f"Bearer {agent.key}"},
    )
    assert response.status_code == 201, response.text
    return {"assistance": assistance_id, "mailing": response.json()["id"]}
