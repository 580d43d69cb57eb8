"""Which language a person reads the platform in (issue 16), in one place.

1. An agent logged in with a session: the language saved in `AgentPreference.language`
   (`AgentLanguageMiddleware`, after authentication, overrides LocaleMiddleware's choice).
2. Anyone else (the login page, an API call with a key, an agent with no saved
   preference): the browser's `Accept-Language`, chosen by Django's LocaleMiddleware.
3. A widget visitor: the browser's language when the platform speaks it, else the
   inbox's default (`visitor_language`); what a client receives by SMS or email follows
   `Client.language` (`language_or_default`).
4. An email to an agent (incident notices, the daily report) is rendered in that agent's
   saved language (`user_language`), since no request is there to say.
5. Times read in the viewer's time zone: the one an agent saved (`AgentPreference.time_zone`,
   `user_time_zone` for an email to them), else the browser's (the `tz` cookie the console
   sets), else TIME_ZONE. The console formats its own with Intl in the saved zone (the
   page's config) or, without one, the browser's.

JavaScript gets its strings from `/jsi18n/` (`javascript_catalog`): one catalog per
language, built once per process and answered with an ETag, so a page load costs a 304.
The widget, on a customer's site, gets the same strings as data from its own public API
(`catalog_strings`; widget/public_api.py), never as globals in the customer's page.
"""

from __future__ import annotations

import functools
import hashlib
import json
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils import timezone, translation
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views.i18n import JavaScriptCatalog, JSONCatalog

from core.models import AgentPreference


def supported_language(code: str | None) -> str | None:
    """The code in settings.LANGUAGES that `code` names ("pt-BR", "pt_br", "ru-RU"...),
    or None when the platform does not speak it (or `code` is empty or malformed)."""
    if not code:
        return None
    try:
        return translation.get_supported_language_variant(code.replace("_", "-").lower())
    except LookupError:
        return None


def language_or_default(code: str | None, default: str | None = None) -> str:
    """`code` if spoken, else `default` if spoken, else the platform's LANGUAGE_CODE."""
    return supported_language(code) or supported_language(default) or settings.LANGUAGE_CODE


def user_language(user_id: int | None) -> str | None:
    """The language a user saved in their preferences, if any and still spoken."""
    return user_language_and_time_zone(user_id)[0]


def user_time_zone(user_id: int | None) -> zoneinfo.ZoneInfo | None:
    """The time zone a user saved in their preferences, if any and still known."""
    return user_language_and_time_zone(user_id)[1]


def user_language_and_time_zone(
    user_id: int | None,
) -> tuple[str | None, zoneinfo.ZoneInfo | None]:
    """Both saved choices in one query (None for each one not saved or no longer valid)."""
    if user_id is None:
        return None, None
    saved = (
        AgentPreference.objects.filter(user_id=user_id).values_list("language", "time_zone").first()
    )
    if saved is None:
        return None, None
    return supported_language(saved[0]), viewer_time_zone(saved[1])


def visitor_language(request: HttpRequest, default: str | None = None) -> str:
    """For a widget visitor: the first language of Accept-Language the platform speaks,
    else `default` (the inbox's), else LANGUAGE_CODE. Unlike LocaleMiddleware this can
    tell "the browser asked for English" from "the browser asked for nothing we speak"."""
    header = request.headers.get("Accept-Language", "")
    for code, _quality in translation.trans_real.parse_accept_lang_header(header):
        if code != "*" and (found := supported_language(code)):
            return found
    return language_or_default(None, default)


class AgentLanguageMiddleware:
    """Activate a session user's saved language over the browser's (after
    AuthenticationMiddleware; LocaleMiddleware has already activated Accept-Language's).

    One indexed query per session request (language and time zone); API-key requests are
    anonymous here (DRF authenticates them in the view), so they follow Accept-Language, as
    the API promises.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        zone = None
        if user is not None and user.is_authenticated:
            language, zone = user_language_and_time_zone(user.pk)
            if language:
                translation.activate(language)
                request.LANGUAGE_CODE = language  # type: ignore[attr-defined]
        # The viewer's time zone: the one the agent saved, else the browser's (a `tz` cookie
        # the console sets from Intl); server-rendered times (the admin's) read in it; with
        # neither, in TIME_ZONE.
        zone = zone or viewer_time_zone(unquote(request.COOKIES.get(TZ_COOKIE, "")))
        if zone is None:
            return self.get_response(request)
        with timezone.override(zone):
            return self.get_response(request)


TZ_COOKIE = "tz"


@functools.lru_cache(maxsize=256)
def viewer_time_zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The IANA zone `name` names, or None (empty, unknown or malformed: never an error)."""
    if not name or len(name) > 64 or name not in _zone_names():
        return None
    return zoneinfo.ZoneInfo(name)


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _catalog_version() -> str:
    """Changes when any compiled catalog changes (a deploy with new translations)."""
    stamps = []
    for base in settings.LOCALE_PATHS:
        for mo in sorted(Path(base).glob("*/LC_MESSAGES/djangojs.mo")):
            stamps.append(f"{mo}:{mo.stat().st_mtime_ns}")
    return hashlib.sha256("|".join(stamps).encode()).hexdigest()[:16]


_catalog_view = JavaScriptCatalog.as_view(packages=["core"])  # + LOCALE_PATHS: ours only
_catalogs: dict[tuple[str, str], tuple[bytes, str]] = {}


def javascript_catalog(request: HttpRequest) -> HttpResponse:
    """`GET /jsi18n/[?lang=ru | ?default=pt-br]`: Django's JavaScript catalog
    (window.gettext, ngettext, interpolate, get_format) in the request's language; in
    `lang` when the platform speaks it; with `default` (the widget: its inbox's language),
    in the browser's language if spoken, else `default`. Public: translations are no secret.

    Cached per language in the process; answered with an ETag and `no-cache`, so a
    browser revalidates (a 304) and never keeps an old language after a switch."""
    language = supported_language(request.GET.get("lang"))
    if language is None and "default" in request.GET:
        # The widget: the visitor's browser language if spoken, else its inbox's default.
        language = visitor_language(request, request.GET["default"])
    language = language or translation.get_language()
    key = (language, _catalog_version())
    if key not in _catalogs:
        with translation.override(language):
            built = _catalog_view(request)
        assert isinstance(built, HttpResponse)  # JavaScriptCatalog renders, never streams
        etag = '"' + hashlib.sha256(built.content).hexdigest()[:20] + '"'
        for stale in [k for k in _catalogs if k[1] != key[1]]:
            del _catalogs[stale]  # catalogs of an older compilation
        _catalogs[key] = (built.content, etag)
    content, etag = _catalogs[key]
    response: HttpResponse
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(content, content_type="text/javascript; charset=utf-8")
    response["ETag"] = etag
    response["Content-Language"] = language
    patch_cache_control(response, private=True, no_cache=True)
    patch_vary_headers(response, ("Accept-Language", "Cookie"))
    return response


_json_catalog_view = JSONCatalog.as_view(packages=["core"])
_strings: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}


def catalog_strings(request: HttpRequest, language: str) -> tuple[dict[str, Any], str]:
    """The same catalog as data, `({msgid: translation}, version)`, for a page that must
    not get window.gettext: the widget runs on a customer's site, whose own globals are
    not ours to set (widget/public_api.py serves it with CORS for the inbox's origins).
    A plural's translation is the list of its forms. Built once per language and
    compiled catalog; `version` changes when either does (an ETag for the caller)."""
    key = (language, _catalog_version())
    if key not in _strings:
        with translation.override(language):
            built = _json_catalog_view(request)
        assert isinstance(built, HttpResponse)
        for stale in [k for k in _strings if k[1] != key[1]]:
            del _strings[stale]
        _strings[key] = (json.loads(built.content)["catalog"], f"{language}-{key[1]}")
    return _strings[key]
