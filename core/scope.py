"""The organization a request acts in: resolved and validated here, once, for every view.

`organization_scope(request, slug=..., required=...)`:

1. The slug comes from the caller (a validated body field, or a URL kwarg), else the
   `organization` query parameter.
2. An integration key acts for its one organization. Its writes (`required=True`) land
   there whatever slug the body names (the trigger fast path does the same); as a
   filter, a slug naming another organization is refused like any other tenant's.
3. Anyone else names the organization. Missing where the view needs one: a 400 with a
   field error on `organization`. Unknown, malformed or another tenant's: the same 404
   for all three (`organization_get_for_principal`), so the API does not tell
   outsiders which organizations exist.
4. Not required and not given (a list): None, meaning every organization the principal
   sees (the selectors filter by `core.access.organizations_for`).

`create_in_organization(request, Serializer, view=...)` is what every create view does
with it: the validated body, and the organization its `organization` field names (as 2.
and 3.), with the view's object permissions (IsOrganizationAdmin) checked on it.
"""

from __future__ import annotations

from typing import Any, Literal, overload

from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from core.access import organization_find_for_principal
from core.auth import IntegrationPrincipal
from core.errors import ApplicationError
from core.models import Organization

PARAM = "organization"

# The query parameter, as documented on every view that reads it.
ORGANIZATION_PARAM = OpenApiParameter(
    PARAM,
    str,
    required=False,
    description="Organization slug (one you belong to; an integration key has its own).",
)


def organization_get_for_principal(*, principal: Any, slug: str) -> Organization:
    """The organization `slug` names if `principal` sees it, else a 404 (the same for
    a malformed slug, an unknown one and another tenant's)."""
    organization = organization_find_for_principal(principal=principal, slug=slug)
    if organization is None:
        raise ApplicationError(
            gettext("Organization not found."), code="not_found", status_code=404
        )
    return organization


@overload
def organization_scope(
    request: Request, *, slug: str | None = ..., required: Literal[True]
) -> Organization: ...


@overload
def organization_scope(
    request: Request, *, slug: str | None = ..., required: bool = ...
) -> Organization | None: ...


def organization_scope(
    request: Request, *, slug: str | None = None, required: bool = False
) -> Organization | None:
    """See the module docstring."""
    principal: Any = request.user
    if required and isinstance(principal, IntegrationPrincipal):
        return principal.organization  # where its writes land, whatever the body says
    if slug is None:
        slug = request.query_params.get(PARAM)
    if slug:
        return organization_get_for_principal(principal=principal, slug=slug)
    if isinstance(principal, IntegrationPrincipal):
        return principal.organization
    if required:
        raise ApplicationError(
            gettext("Which organization?"), fields={PARAM: [gettext("This field is required.")]}
        )
    return None


def create_in_organization(
    request: Request, serializer: type[Serializer], *, view: APIView | None = None
) -> tuple[Organization, dict[str, Any]]:
    """(organization, validated body without `organization`) for a create request; with
    `view`, its object permissions are checked on that organization (a 403 else)."""
    body = serializer(data=request.data)
    body.is_valid(raise_exception=True)
    data = dict(body.validated_data)
    organization = organization_scope(request, slug=data.pop(PARAM, None), required=True)
    if view is not None:
        view.check_object_permissions(request, organization)
    return organization, data
