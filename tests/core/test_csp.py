"""Content-Security-Policy on every page, Swagger UI served by the platform itself, and
the trigger fast path's headers built from the same settings (issue 9 item 7).

The browser half (no violation while the console, the admin and /docs/ run) is in
tests/console/test_csp_browser.py.
"""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.test import Client

from tests.conftest import Process

PAGES = ["/", "/docs/", "/admin/", "/admin/chat/client/", "/admin/chat/client/add/"]


class _Resources(HTMLParser):
    """Every URL a page makes the browser load, and the inline scripts it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name) and tag in ("script", "link", "img", "iframe"):
                self.urls.append(str(values[name]))
        if tag == "script" and not values.get("src") and values.get("type") != "application/json":
            self._in_script = True

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def _resources(html: str) -> _Resources:
    parser = _Resources()
    parser.feed(html)
    return parser


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_the_content_security_policy(staff: Client, path: str) -> None:
    response = staff.get(path)
    assert response.status_code == 200, (path, response.status_code)
    assert response["Content-Type"].startswith("text/html")
    assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY
    # scripts only from this origin: no inline script, no eval, no CDN
    script_src = next(
        d for d in settings.CONTENT_SECURITY_POLICY.split(";") if d.strip().startswith("script-src")
    )
    assert script_src.split() == ["script-src", "'self'"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/docs/", "/admin/login/"])
def test_anonymous_pages_send_it_too(client: Client, path: str) -> None:
    assert client.get(path)["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/login/", "/docs/"])
def test_pages_load_nothing_from_another_host_and_hold_no_inline_script(
    staff: Client, path: str
) -> None:
    page = _resources(staff.get(path).content.decode())
    assert page.urls, "the page loads its own scripts and styles"
    external = [url for url in page.urls if url.startswith(("http:", "https:", "//"))]
    assert external == []
    assert page.inline_scripts == 0


@pytest.mark.django_db
def test_swagger_ui_comes_from_the_platform(client: Client) -> None:
    page = _resources(client.get("/docs/").content.decode())
    bundle = next(url for url in page.urls if url.endswith("swagger-ui-bundle.js"))
    assert bundle.startswith(settings.STATIC_URL)
    init = next(url for url in page.urls if "script" in url and url.startswith("/docs/"))
    response = client.get(init)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in response.content


def test_the_fast_path_sends_the_security_headers_built_from_settings(
    start_web: Callable[..., Process], org: Any
) -> None:
    from core.services import api_key_create

    _, key = api_key_create(name="monitoring", organization=org)
    policy = "default-src 'none'; frame-ancestors 'none'"  # not the default: no copy
    web = start_web(CONTENT_SECURITY_POLICY=policy)
    fast = httpx.post(
        f"{web.url}/api/triggers/",
        json={"triggers": [{"service": "api", "status": 503}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert fast.status_code == 202
    django = httpx.get(f"{web.url}/login/")
    assert fast.headers["content-security-policy"] == policy
    for name in (
        "content-security-policy",
        "x-frame-options",
        "x-content-type-options",
        "referrer-policy",
        "cross-origin-opener-policy",
    ):
        assert fast.headers[name] == django.headers[name], name


def test_the_fast_path_headers_match_djangos_over_https(rf: Any, settings: Any) -> None:
    from django.http import HttpResponse
    from django.utils.module_loading import import_string

    from core.security_headers import security_headers

    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    request = rf.get("/", secure=True)
    django = HttpResponse()
    for middleware in (
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "core.security_headers.ContentSecurityPolicyMiddleware",
    ):
        django = import_string(middleware)(lambda r, response=django: response)(request)
    built = {name.decode(): value.decode() for name, value in security_headers(https=True)}
    assert built == {name.lower(): value for name, value in django.items() if name.lower() in built}
    assert built["strict-transport-security"] == "max-age=3600; includeSubDomains; preload"
    assert b"strict-transport-security" not in dict(security_headers(https=False))
