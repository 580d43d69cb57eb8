"""Fetch-and-authorize helpers, shared by HTTP views and the websocket consumer.

The rules live here once:

- which organizations a principal sees (`organizations_for`): an integration key its
  own, a user the ones they are a member of, anyone else none;
- finding one of them by slug (`organization_find_for_principal`): a malformed slug,
  an unknown one and another tenant's are the same None, which HTTP answers 404
  (`core.scope.organization_get_for_principal`) and the websocket 4403, so neither
  reveals which organizations exist;
- who acts as an agent (`is_agent`) and who administers an organization (`is_admin`).

`core.scope` (the organization of a request), `core.permissions` (DRF permission
classes) and `chat.ws_auth` (websocket admission) are built on these. DRF loads
`core.permissions` while `rest_framework.views` is loading, so this module imports
nothing that imports that (`core.errors` does): it answers with values, and the HTTP
errors are raised by `core.scope`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet

from core.auth import IntegrationPrincipal
from core.models import Membership, Organization, slug_validator


def organizations_for(principal: Any) -> QuerySet[Organization]:
    if isinstance(principal, IntegrationPrincipal):
        return Organization.objects.filter(pk=principal.organization.pk)
    if principal is None or not getattr(principal, "is_authenticated", False):
        return Organization.objects.none()
    return Organization.objects.filter(memberships__user=principal)


def organization_find_for_principal(*, principal: Any, slug: str) -> Organization | None:
    """The organization `slug` names if `principal` sees it, else None (also for a
    malformed slug: checked before the query, PostgreSQL refuses e.g. a NUL byte)."""
    try:
        slug_validator(slug)
    except DjangoValidationError:
        return None
    return organizations_for(principal).filter(slug=slug).first()


def is_agent(principal: Any) -> bool:
    """A person (an agent key or a session), not an integration acting for its
    organization: only agents send messages, accept requests, acknowledge incidents."""
    return bool(getattr(principal, "is_authenticated", False)) and not isinstance(
        principal, IntegrationPrincipal
    )


def is_admin(*, user: Any, organization: Organization) -> bool:
    """An organization admin. An integration key is its organization's configuration
    tool (scoped by `admin` like any key), so it counts as one for its own."""
    if isinstance(user, IntegrationPrincipal):
        return user.organization.pk == organization.pk
    return Membership.objects.filter(
        user=user, organization=organization, role=Membership.Role.ADMIN
    ).exists()
