"""Writes for the platform: organizations, membership, API keys (the API's and the
admin's, core/service_admin.py)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils.translation import gettext

from core.auth import generate_key, hash_key
from core.errors import ApplicationError
from core.logging import get_logger
from core.models import ApiKey, Membership, Organization
from core.scopes import AGENT_DEFAULT, INTEGRATION_DEFAULT, validate_scopes

log = get_logger(__name__)


@transaction.atomic
def organization_create(*, slug: str, name: str = "") -> Organization:
    organization = Organization(slug=slug, name=name or slug)
    organization.full_clean()
    organization.save()
    log.info("organization_created", organization_id=organization.pk, slug=slug)
    return organization


@transaction.atomic
def organization_update(*, organization: Organization, data: dict[str, Any]) -> Organization:
    """Its name only: the slug is in every URL and websocket address of its clients."""
    if "name" in data:
        organization.name = data["name"] or organization.slug
    organization.full_clean()
    organization.save(update_fields=["name"])
    log.info("organization_updated", organization_id=organization.pk, fields=sorted(data))
    return organization


@transaction.atomic
def membership_add(
    *,
    organization: Organization,
    user: User,
    role: str = Membership.Role.AGENT,
    is_available: bool | None = None,
) -> Membership:
    """Make `user` a member (or change an existing member's role)."""
    defaults: dict[str, Any] = {"role": role}
    if is_available is not None:
        defaults["is_available"] = is_available
    membership, _ = Membership.objects.update_or_create(
        organization=organization, user=user, defaults=defaults
    )
    log.info(
        "membership_added", membership_id=membership.pk, organization_id=organization.pk, role=role
    )
    return membership


@transaction.atomic
def membership_update(*, membership: Membership, data: dict[str, Any]) -> Membership:
    """Role and availability; a membership never changes its user or organization."""
    moved = sorted({"user", "organization"} & set(data))
    if moved:
        raise ApplicationError(
            gettext("A membership does not move: remove it and add another."),
            fields={field: [gettext("Cannot be changed.")] for field in moved},
        )
    for field in ("role", "is_available"):
        if field in data:
            setattr(membership, field, data[field])
    membership.full_clean(validate_unique=False, validate_constraints=False)
    membership.save(update_fields=["role", "is_available"])
    log.info("membership_updated", membership_id=membership.pk, fields=sorted(data))
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    """The user leaves the organization (and its teams: their rows go with it)."""
    log.info(
        "membership_removed",
        membership_id=membership.pk,
        organization_id=membership.organization_id,
        user_id=membership.user_id,
    )
    membership.delete()


def agent_create(*, username: str, password: str | None = None, email: str = "") -> User:
    User = get_user_model()
    user, created = User.objects.get_or_create(username=username, defaults={"email": email})
    if created or password:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    return user


def api_key_create(
    *,
    name: str,
    user: User | None = None,
    organization: Organization | None = None,
    scopes: list[str] | tuple[str, ...] | None = None,
) -> tuple[ApiKey, str]:
    """Create an agent key (user) or an integration key (organization).

    `scopes` defaults to the least the kind needs (core/scopes.py). Returns the row
    and the raw key; the raw key is not stored and cannot be shown again.
    """
    raw, prefix = generate_key()
    kind = ApiKey.Kind.AGENT if user is not None else ApiKey.Kind.INTEGRATION
    if scopes is None:
        scopes = AGENT_DEFAULT if user is not None else INTEGRATION_DEFAULT
    key = ApiKey.objects.create(
        kind=kind,
        name=name,
        prefix=prefix,
        key_hash=hash_key(raw),
        user=user,
        organization=organization if user is None else None,
        scopes=validate_scopes(scopes),
    )
    log.info("api_key_created", api_key_id=key.pk, kind=kind, prefix=prefix, scopes=key.scopes)
    return key, raw


@transaction.atomic
def api_key_update(*, api_key: ApiKey, data: dict[str, Any]) -> ApiKey:
    """Name, scopes, revocation (`revoked_at`); never its owner or kind. A revoked key
    stops working at once for the API and within TRIGGER_AUTH_CACHE_TTL on the trigger
    fast path (escalation/fastpath.py)."""
    if "scopes" in data:
        try:
            api_key.scopes = validate_scopes(list(data["scopes"] or []))
        except ValueError as exc:
            raise ApplicationError(str(exc), fields={"scopes": [str(exc)]}) from exc
    for field in ("name", "revoked_at"):
        if field in data:
            setattr(api_key, field, data[field])
    api_key.save(update_fields=["name", "scopes", "revoked_at"])
    log.info("api_key_updated", api_key_id=api_key.pk, fields=sorted(data))
    return api_key
