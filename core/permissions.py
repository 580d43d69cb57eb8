"""HTTP policy as DRF permission classes: key scopes, agents, organization admins.

Composed per view (`permission_classes = [IsAuthenticated, ScopePermission, IsAgent]`);
the rules themselves are `core.access`'s, shared with the websocket.

- `ScopePermission` (default): what an API key may do (below).
- `IsAgent`: a person acts (agent key or session); an integration key is refused.
- `IsOrganizationAdmin`: an object-level check. The view calls
  `self.check_object_permissions(request, obj)` with the organization it resolved
  (`core.scope`) or the object it fetched (anything with `.organization`).

## Key scopes: one permission class, declared per view and method

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

from typing import Any, ClassVar

from django.utils.translation import gettext
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request

# DRF imports this module while `rest_framework.views` (which core.errors imports) is
# still loading: nothing imported here may import core.errors. core.errors'
# exception_handler turns PermissionDenied into the usual error shape.
from core import scopes
from core.access import is_admin, is_agent
from core.models import ApiKey, Organization


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
    key = request.auth
    if not isinstance(key, ApiKey):
        return True  # a session, or no credentials (IsAuthenticated answers those)
    if scope is None:
        raise PermissionDenied(
            gettext("API keys may not use %(method)s on this endpoint (no scope allows it).")
            % {"method": method},
            code="insufficient_scope",
        )
    if not scopes.key_has_scope(key, scope):
        raise PermissionDenied(
            gettext(
                "This API key lacks the '%(scope)s' scope needed for %(method)s on this endpoint."
            )
            % {"scope": scope, "method": method},
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


# The settings' default (DEFAULT_PERMISSION_CLASSES).
DEFAULT: list[type[BasePermission]] = [IsAuthenticated, ScopePermission]


def with_default(*extra: type[BasePermission]) -> list[type[BasePermission]]:
    """The default classes and the view's own: `permission_classes =
    with_default(IsAgent)` (a view's list replaces the default, it does not add to it)."""
    return [*DEFAULT, *extra]


class IsAgent(BasePermission):
    """Only a person acts: an integration key is refused (403 `forbidden`)."""

    message = "Agents only; use an agent key or a session."
    code = "forbidden"

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_agent(request.user)


class IsOrganizationAdmin(BasePermission):
    """The object's organization is one the principal administers (403 `forbidden`).

    `methods`: the methods it guards (reading stays open to every member)."""

    message = "Only an admin may do this."
    code = "forbidden"
    methods: ClassVar[frozenset[str]] = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        if (request.method or "").upper() not in self.methods:
            return True
        organization = obj if isinstance(obj, Organization) else obj.organization
        return is_admin(user=request.user, organization=organization)
