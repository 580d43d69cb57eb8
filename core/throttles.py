"""HTTP rate limits, all counted by `core.ratelimit` (Redis, shared by every process).

Who is counted, and against which setting:

| surface                         | bucket (`rl:<bucket>:<window>`)       | setting        |
|---------------------------------|----------------------------------------|----------------|
| API, API key (agent/integration)| `api:key:<ApiKey id>`                  | API_KEY_RATE   |
| API, session (console)          | `api:user:<user id>`                   | USER_RATE      |
| API, anonymous                  | `api:ip:<client address>`              | ANON_RATE      |
| monitoring posts (`triggers`)   | `triggers:key:<ApiKey id>`             | TRIGGER_RATE   |
| signed file links (`file_links`)| `file_links:ip:<client address>`       | FILE_LINK_RATE |
| console and admin login         | `login:user:<hash>`, `login:ip:<addr>` | LOGIN_RATE     |

1. The API: `PrincipalRateThrottle` (DRF's DEFAULT_THROTTLE_CLASSES). A view with
   `throttle_scope = "triggers"` is counted in that scope's bucket and rate instead
   of the general one; the trigger fast path (escalation/fastpath.py) counts the same
   bucket with `api_key_ahit`, so a key has one monitoring limit whichever path
   answers. Over it: 429, `Retry-After` and the usual error shape (core.errors).
2. Logins (`login_rate_limited`, around the console's and the admin's login views):
   each POST is counted per username and per client address *before* the password
   is checked and given back if it succeeds, so only failures count and a burst of
   parallel guesses cannot slip through before the first failure is recorded. Over
   either limit the POST is answered 429 with the empty login page and a message,
   without checking the password: the right password gets the same answer as a
   wrong one, so a locked-out guesser learns nothing.

A client address is the connection's (daphne's `REMOTE_ADDR`; behind a load balancer
set `WEB_PROXY_HEADER`, see run_web), an IPv6 address counted by its /64, which one
host usually holds whole.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.translation import ngettext
from prometheus_client import Counter
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from core.models import ApiKey
from core.ratelimit import ahit, hit, rate, refund

if TYPE_CHECKING:
    # Not at run time: DRF imports this module while `rest_framework.views` (which
    # core.errors imports too) is still being defined.
    from rest_framework.views import APIView

# `throttle_scope` of a view -> the rate setting of that scope.
SCOPE_RATES = {"triggers": "TRIGGER_RATE", "file_links": "FILE_LINK_RATE"}

# What is being refused, on /metrics (no log line per refusal: a flood would flood logs).
RATE_LIMITED = Counter(
    "http_rate_limited_total",
    "HTTP requests answered 429 by a rate limit",
    ["surface"],  # api, triggers, file_links, login
)


def client_address(request: HttpRequest) -> str:
    """The client's address as counted by per-address limits (IPv6: its /64)."""
    raw = request.META.get("REMOTE_ADDR") or "unknown"
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return f"{ipaddress.IPv6Network((address, 64), strict=False).network_address}/64"
    return str(address)


def _scope_rate(scope: str) -> str:
    try:
        return SCOPE_RATES[scope]
    except KeyError:
        raise ImproperlyConfigured(
            f"throttle_scope {scope!r}: not in {sorted(SCOPE_RATES)}"
        ) from None


def _key_bucket(scope: str | None, key_id: int) -> str:
    return f"{scope or 'api'}:key:{key_id}"


class PrincipalRateThrottle(BaseThrottle):
    """Per API key, else per session user, else per client address (see module doc)."""

    retry_after = 0.0

    def allow_request(self, request: Request, view: APIView) -> bool:
        scope: str | None = getattr(view, "throttle_scope", None)
        if isinstance(request.auth, ApiKey):
            bucket, setting = _key_bucket(scope, request.auth.pk), "API_KEY_RATE"
        elif request.user is not None and request.user.is_authenticated:
            bucket, setting = f"{scope or 'api'}:user:{request.user.pk}", "USER_RATE"
        else:
            bucket, setting = f"{scope or 'api'}:ip:{client_address(request)}", "ANON_RATE"
        limit, window = rate(_scope_rate(scope) if scope else setting)
        self.retry_after = hit(bucket, limit=limit, window=window)
        if self.retry_after:
            RATE_LIMITED.labels(scope or "api").inc()
        return not self.retry_after

    def wait(self) -> float | None:
        return self.retry_after or None


async def api_key_ahit(key_id: int, *, scope: str) -> float:
    """Count one request of API key `key_id` in `scope` (the trigger fast path's twin of
    `PrincipalRateThrottle`, same bucket); 0 when allowed, else seconds to wait."""
    limit, window = rate(_scope_rate(scope))
    wait = await ahit(_key_bucket(scope, key_id), limit=limit, window=window)
    if wait:
        RATE_LIMITED.labels(scope).inc()
    return wait


def _login_buckets(request: HttpRequest) -> list[str]:
    # Hashed: any string may be posted as a username; the bucket stays short and clean.
    username = request.POST.get("username", "").strip().casefold()
    digest = hashlib.sha256(username.encode(errors="replace")).hexdigest()[:32]
    return [f"login:user:{digest}", f"login:ip:{client_address(request)}"]


def login_rate_limited(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Limit failed logins of a Django login view per username and per client address
    (LOGIN_RATE); see the module docstring."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        limit, window = rate("LOGIN_RATE")
        buckets = _login_buckets(request)
        wait = max([hit(bucket, limit=limit, window=window) for bucket in buckets])
        if wait:
            from core.errors import rate_limited

            RATE_LIMITED.labels("login").inc()

            _, headers = rate_limited(wait)
            seconds = int(headers["Retry-After"])
            messages.error(
                request,
                ngettext(
                    "Too many failed logins. Try again in %(seconds)d second.",
                    "Too many failed logins. Try again in %(seconds)d seconds.",
                    seconds,
                )
                % {"seconds": seconds},
            )
            # The page a visitor gets, with the message: the form is never bound, so
            # the password is not even looked at.
            request.method = "GET"
            response = view(request, *args, **kwargs)
            if response.status_code == 200:
                response.status_code = 429
            for name, value in headers.items():
                response[name] = value
            return response
        response = view(request, *args, **kwargs)
        # Django's LoginView answers a valid form with a redirect, an invalid one with
        # the form again (200): only failures keep their count.
        if response.status_code in (301, 302, 303):
            for bucket in buckets:
                refund(bucket, window=window)
        return response

    return wrapped
