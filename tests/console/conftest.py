"""Browser fixtures for the console: Playwright (sync) driving Debian's Chromium headless.

Playwright's sync API keeps an asyncio loop "running" in the test thread, which makes
Django refuse ORM calls (SynchronousOnlyOperation). While this module's browser is up the
test process sets DJANGO_ALLOW_ASYNC_UNSAFE; the servers it starts get it cleared again
(`start_web(**SAFE)`), so they keep Django's check.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

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
SAFE = {"DJANGO_ALLOW_ASYNC_UNSAFE": ""}  # keep Django's async-safety check in servers


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip(f"chromium not installed at {CHROMIUM} (contrib/test.sh installs it with apt)")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
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


@pytest.fixture
def web_env() -> dict[str, str]:
    """Extra environment for the web process (override with parametrize)."""
    return {}


@pytest.fixture
def web(start_web: Callable[..., Any], sender: Any, browser: Any, web_env: dict[str, str]) -> Any:
    """A daphne serving the console (the sender simulator configured for its jobs)."""
    return start_web(**SAFE, **web_env)


@pytest.fixture
def worker(start_worker: Callable[..., Any], sender: Any, browser: Any) -> Any:
    return start_worker(**SAFE)


@pytest.fixture
def new_page(browser: Any, web: Any) -> Iterator[Callable[..., Any]]:
    """Factory: a fresh browser context (its own cookies) with one page, logged in or not."""
    contexts: list[Any] = []

    def _new(username: str | None = None, *, viewport: dict[str, int] | None = None) -> Any:
        context = browser.new_context(
            base_url=web.url, viewport=viewport or {"width": 1200, "height": 800}
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


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
