"""REST shapes of the platform's own objects."""

from __future__ import annotations

from rest_framework import serializers

from core.models import Organization


class OrganizationSerializer(serializers.ModelSerializer[Organization]):
    """An organization the caller sees, with the caller's role in it (`context["roles"]`:
    organization id -> role; an integration key has none and is `integration`)."""

    role = serializers.SerializerMethodField()

    class Meta:
        model = Organization
        fields = ["slug", "name", "role"]

    def get_role(self, organization: Organization) -> str:
        roles: dict[int, str] = self.context.get("roles", {})
        return roles.get(organization.pk, "integration")
