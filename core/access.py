"""Fetch-and-authorize helpers, shared by HTTP views and the websocket consumer.

The rule "a principal sees only the organizations it belongs to" lives here once.
A non-member gets the same 404 as an unknown organization over HTTP, so the API
does not reveal which organizations exist.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from core.auth import IntegrationPrincipal
from core.errors import ApplicationError
from core.models import Membership, Organization


def organizations_for(principal: Any) -> QuerySet[Organization]:
    if isinstance(principal, IntegrationPrincipal):
        return Organization.objects.filter(pk=principal.organization.pk)
    if principal is None or not getattr(principal, "is_authenticated", False):
        return Organization.objects.none()
    return Organization.objects.filter(memberships__user=principal)


def organization_get_for_principal(*, principal: Any, slug: str) -> Organization:
    organization = organizations_for(principal).filter(slug=slug).first()
    if organization is None:
        raise ApplicationError("Organization not found.", code="not_found", status_code=404)
    return organization


def organization_ids_for(principal: Any) -> list[int]:
    return list(organizations_for(principal).values_list("pk", flat=True))


def is_member(*, user: Any, organization: Organization) -> bool:
    if isinstance(user, IntegrationPrincipal):
        return user.organization.pk == organization.pk
    return Membership.objects.filter(user=user, organization=organization).exists()


def is_admin(*, user: Any, organization: Organization) -> bool:
    return Membership.objects.filter(
        user=user, organization=organization, role=Membership.Role.ADMIN
    ).exists()
