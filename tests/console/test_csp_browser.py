"""Under the Content-Security-Policy every page still works in a real browser, and
nothing is refused: the console, Swagger UI (served from the platform, no CDN) and the
admin. A violation shows as a `securitypolicyviolation` event and a console error."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.console.conftest import login

pytestmark = pytest.mark.django_db(transaction=True)

SHARED_WORKER = False  # nothing here sends messages


def _watch(page: Any) -> dict[str, list[str]]:
    """Collect CSP violations (the DOM event) and console errors of a page."""
    seen: dict[str, list[str]] = {"console": [], "requests": []}
    page.add_init_script(
        "window.__csp = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    page.on("console", lambda m: seen["console"].append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: seen["requests"].append(r.url))
    return seen


def _violations(page: Any) -> list[str]:
    return list(page.evaluate("window.__csp"))


def test_the_console_runs_under_the_policy(agent: Any, new_page: Any, web: Any) -> None:
    page = new_page()
    seen = _watch(page)
    login(page, "alice")  # the console reaches "live": its scripts and websocket run
    expect(page.locator("#org-select")).to_contain_text("Acme")
    assert _violations(page) == []
    assert [m for m in seen["console"] if "Content Security Policy" in m] == []
    assert page.errors == []


def test_swagger_ui_renders_from_the_platform(new_page: Any, web: Any) -> None:
    page = new_page()
    seen = _watch(page)
    page.goto("/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text(
        "Customer communication platform API"
    )
    expect(page.locator(".opblock").first).to_be_visible()
    assert _violations(page) == []
    assert [m for m in seen["console"] if "Content Security Policy" in m] == []
    assert [url for url in seen["requests"] if not url.startswith(web.url)] == []
    assert page.errors == []


def test_the_admin_runs_under_the_policy(django_user_model: Any, new_page: Any, web: Any) -> None:
    django_user_model.objects.create_superuser("root", "root@example.com", "pw-root")
    page = new_page()
    seen = _watch(page)
    page.goto("/admin/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("pw-root")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#site-name")).to_be_visible()
    page.goto("/admin/chat/client/add/")
    expect(page.locator("form#client_form")).to_be_visible()
    assert _violations(page) == []
    assert [m for m in seen["console"] if "Content Security Policy" in m] == []
