"""Writes for the platform: organizations, membership, API keys."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction

from core.auth import generate_key, hash_key
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
def membership_add(
    *, organization: Organization, user: User, role: str = Membership.Role.AGENT
) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
    return membership


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
