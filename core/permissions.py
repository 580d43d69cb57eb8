"""API key scopes on HTTP endpoints: one permission class, declared per view and method.

Every API view says which scope each of its methods needs:

    class HelpDeskDetailView(APIView):
        required_scopes = {"GET": scopes.READ, "PATCH": scopes.AGENT, "DELETE": scopes.AGENT}

`ScopePermission` (in `DEFAULT_PERMISSION_CLASSES`, after `IsAuthenticated`) reads it:

1. A session (console, admin) is not scoped: `request.auth` is not an `ApiKey`, so the
   user's memberships and roles decide, as before.
2. An API key needs the declared scope (`HEAD` follows `GET`; `OPTIONS`, which describes
   the endpoint, needs `read` unless declared).
3. Fail closed: a method a view implements but does not declare is refused for every
   key, so an endpoint added without a declaration is not open to a leaked integration
   key (tests/core/test_scopes.py walks the URLconf and fails on such a view). A method
   the view does not implement passes through to DRF's 405.

The refusal is a 403 `insufficient_scope` naming the missing scope. A scope never grants
more than the principal behind the key has: the views' own checks (organization admin,
"agents only") still run after this one.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

# Only light imports here: DRF imports this module while `rest_framework.views` (which
# core.errors imports) is still loading; models and ApplicationError would be circular.
# core.errors.exception_handler turns PermissionDenied into the usual error shape.
from core import scopes


def required_scope(view: Any, method: str) -> str | None:
    """The scope `view` declares for `method`, or None (undeclared: keys are refused)."""
    declared: dict[str, str] = getattr(view, "required_scopes", None) or {}
    method = method.upper()
    if method in declared:
        return declared[method]
    if method == "HEAD":
        return declared.get("GET")
    if method == "OPTIONS":
        return scopes.READ
    return None


def _check(request: Request, scope: str | None, method: str) -> bool:
    from core.models import ApiKey

    key = request.auth
    if not isinstance(key, ApiKey):
        return True  # a session, or no credentials (IsAuthenticated answers those)
    if scope is None:
        raise PermissionDenied(
            f"API keys may not use {method} on this endpoint (no scope allows it).",
            code="insufficient_scope",
        )
    if not scopes.key_has_scope(key, scope):
        raise PermissionDenied(
            f"This API key lacks the '{scope}' scope needed for {method} on this endpoint.",
            code="insufficient_scope",
        )
    return True


class ScopePermission(BasePermission):
    """The default: the scope the view declares for the request's method."""

    def has_permission(self, request: Request, view: Any) -> bool:
        method = request.method or ""
        if not hasattr(view, method.lower()):
            return True  # nothing to guard: the view answers 405, as without keys
        return _check(request, required_scope(view, method), method)


def HasScope(scope: str) -> type[BasePermission]:
    """A permission class requiring `scope` for every method, for a view that lists its
    own `permission_classes` (which replaces the default `ScopePermission`):
    `permission_classes = [IsAuthenticated, HasScope(scopes.TRIGGERS)]`."""
    scopes.validate_scopes([scope])

    class _HasScope(BasePermission):
        def has_permission(self, request: Request, view: Any) -> bool:
            return _check(request, scope, request.method or "")

    _HasScope.__name__ = _HasScope.__qualname__ = f"HasScope({scope!r})"
    return _HasScope
