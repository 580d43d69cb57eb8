"""One error type and one exception handler: every error has the same JSON shape.

{"error": {"code": "validation_error", "message": "...", "fields": {"phone": ["..."]}}}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.logging import get_logger

log = get_logger(__name__)


class ApplicationError(Exception):
    """A business rule said no. Services raise it; the handler turns it into a 4xx."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        status_code: int = 400,
        fields: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status_code = status_code
        self.fields = fields or {}


def rate_limited(wait: float) -> tuple[dict[str, Any], dict[str, str]]:
    """(body, headers) of every 429: the DRF throttle (through the handler below), the
    login pages' retry hint and the trigger fast path build theirs from this one."""
    seconds = max(1, math.ceil(wait))  # Retry-After is whole seconds: never early
    body = {
        "error": {
            "code": "rate_limited",
            "message": _("Too many requests; retry in %(seconds)d s.") % {"seconds": seconds},
        }
    }
    return body, {"Retry-After": str(seconds)}


def dependency_unavailable(exc: BaseException) -> str | None:
    """The dependency ("redis" or "database") that `exc` says is down, if it is one."""
    from core.resilience import DATABASE_ERRORS, REDIS_ERRORS

    if isinstance(exc, REDIS_ERRORS):
        return "redis"
    if isinstance(exc, DATABASE_ERRORS):
        return "database"
    return None


def unavailable_response(dependency: str, path: str | None) -> Response:
    """503 `service_unavailable` during an outage of Redis or the database (issue #10):
    the request did not happen (or its transaction rolled back); the client may retry.
    The body names the part that is down, never its host."""
    log.warning("service_unavailable", dependency=dependency, path=path)
    return Response(
        {
            "error": {
                "code": "service_unavailable",
                "message": _("A backing service (%(dependency)s) is unavailable; retry shortly.")
                % {"dependency": dependency},
            }
        },
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "2"},
    )


def _flatten(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {k: v for k, v in detail.items()}
    if isinstance(detail, list):
        return {"non_field_errors": detail}
    return {"non_field_errors": [detail]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        body: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.fields:
            body["fields"] = exc.fields
        return Response({"error": body}, status=exc.status_code)
    if isinstance(exc, OperationalError) and "database is locked" in str(exc):
        # SQLite's writer lock outlasted SQLITE_TIMEOUT: busy, not broken. Nothing was
        # written (the request's transaction rolled back), so the client may retry.
        log.warning("database_locked", path=getattr(context.get("request"), "path", None))
        return Response(
            {
                "error": {
                    "code": "database_busy",
                    "message": _("The database is busy; retry shortly."),
                }
            },
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "1"},
        )
    unavailable = dependency_unavailable(exc)
    if unavailable is not None:
        return unavailable_response(unavailable, getattr(context.get("request"), "path", None))
    if isinstance(exc, exceptions.Throttled):
        body, headers = rate_limited(getattr(exc, "wait", None) or 1)  # not in the stubs
        return Response(body, status=status.HTTP_429_TOO_MANY_REQUESTS, headers=headers)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "error": {
                "code": "validation_error",
                "message": _("Invalid input."),
                "fields": _flatten(exc.detail),
            }
        }
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        response.data = {
            "error": {
                "code": codes if isinstance(codes, str) else "error",
                "message": str(exc.detail),
            }
        }
    if response.status_code == status.HTTP_401_UNAUTHORIZED:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


class DependencyUnavailableMiddleware:
    """The same 503 for views outside DRF (console, admin, health-free pages): an
    exception a view raises because Redis or the database is down is an outage, not a
    500. Last in MIDDLEWARE, so it sees the view's exception first."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        dependency = dependency_unavailable(exc)
        if dependency is None:
            return None
        response = unavailable_response(dependency, request.path)
        return JsonResponse(
            response.data, status=response.status_code, headers={"Retry-After": "2"}
        )
