"""API keys: `Authorization: Bearer <key>` (or `Token <key>`), stored hashed."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from core.models import ApiKey, Organization
from core.queries import unique_row


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def generate_key() -> tuple[str, str]:
    """Returns (raw key, prefix). The raw key is shown once and never stored."""
    prefix = secrets.token_hex(4)
    return f"{prefix}.{secrets.token_urlsafe(32)}", prefix


def api_key_lookup(raw: str) -> ApiKey | None:
    if not raw or len(raw) > 200:
        return None
    key = unique_row(
        ApiKey.objects.select_related("user", "organization").filter(
            key_hash=hash_key(raw), revoked_at__isnull=True
        )
    )
    if key is None:
        return None
    if key.user is not None and not key.user.is_active:
        return None
    # Tells an admin which keys are still in use. At most one write a minute per
    # key: a write on every request would serialize busy integrations on SQLite.
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


@dataclass
class IntegrationPrincipal:
    """The `request.user` of an integration key: acts for one organization only."""

    organization: Organization
    api_key: ApiKey
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    pk: None = None
    id: None = None

    def __str__(self) -> str:
        return f"integration:{self.api_key.name}@{self.organization.slug}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request: Request) -> tuple[object, ApiKey] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        key = api_key_lookup(header[1].decode(errors="replace"))
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        if key.kind == ApiKey.Kind.INTEGRATION:
            assert key.organization is not None
            return IntegrationPrincipal(organization=key.organization, api_key=key), key
        return key.user, key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents the API key in the OpenAPI schema (and silences spectacular's warning)."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An agent or integration API key: `Authorization: Bearer <key>`.",
        }
