"""Security response headers, built once from settings for every way a response leaves.

Django answers most requests and its middleware adds these headers; the trigger fast
path (escalation/fastpath.py) answers monitoring posts in front of Django and must send
the same ones. Both take them from `security_headers()`, so changing a setting (say the
Content-Security-Policy) changes every response and no copy drifts.

Django 5.2 has no Content-Security-Policy support (6.0 adds it), hence the small
middleware here. The policy is the `CONTENT_SECURITY_POLICY` setting; it is sent on
every response (an API's JSON answer is harmless to cover and cheaper than deciding
which responses are pages). A view that sets its own policy keeps it.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

CSP_HEADER = "Content-Security-Policy"


@cache
def security_headers(*, https: bool = False) -> tuple[tuple[bytes, bytes], ...]:
    """(name, value) pairs, lower-case ASCII bytes as ASGI wants, of the headers that
    Django's SecurityMiddleware, XFrameOptionsMiddleware and the CSP middleware add to
    a response; `https`: the request came over HTTPS (HSTS is only sent then)."""
    headers: list[tuple[str, str]] = []
    if https and settings.SECURE_HSTS_SECONDS:
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts += "; preload"
        headers.append(("Strict-Transport-Security", hsts))
    if settings.CONTENT_SECURITY_POLICY:
        headers.append((CSP_HEADER, settings.CONTENT_SECURITY_POLICY))
    headers.append(("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY")))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        if not isinstance(policy, str):
            policy = ",".join(policy)
        headers.append(("Referrer-Policy", policy))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    return tuple((name.lower().encode("ascii"), value.encode("ascii")) for name, value in headers)


def _forget(**kwargs: object) -> None:
    # Tests change settings with override_settings / the `settings` fixture.
    security_headers.cache_clear()


setting_changed.connect(_forget)


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Adds `CONTENT_SECURITY_POLICY` to every response that does not carry one."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if settings.CONTENT_SECURITY_POLICY and CSP_HEADER not in response:
            response[CSP_HEADER] = settings.CONTENT_SECURITY_POLICY
        return response
