"""Platform admin: organizations, memberships and API keys are written by core/services.py
(through core.service_admin.ServiceAdmin); deliveries and their attempts are records the
outbox writes, read-only here. Teams are registered by escalation/admin.py."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from core import scopes, services
from core.models import ApiKey, Delivery, DeliveryAttempt, Membership, Organization
from core.service_admin import ReadOnlyAdmin, ReadOnlyInline, ServiceAdmin, ServiceInline

__all__ = ["ReadOnlyAdmin"]  # its home was here: other admins import it from either


class MembershipInline(ServiceInline):
    model = Membership
    fields = ["user", "role", "is_available"]
    autocomplete_fields = ["user"]
    service_create = services.membership_add
    service_update = services.membership_update
    service_delete = services.membership_remove


@admin.register(Organization)
class OrganizationAdmin(ServiceAdmin):
    """No delete: everything of the organization would go with it, and no service
    says what that means for its running mailings and open incidents yet."""

    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]
    service_create = services.organization_create
    service_update = services.organization_update

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["slug"] if obj is not None else []  # in its clients' URLs


@admin.register(Membership)
class MembershipAdmin(ServiceAdmin):
    list_display = ["user", "organization", "role", "is_available"]
    list_filter = ["role", "organization"]
    autocomplete_fields = ["user"]
    service_create = services.membership_add
    service_update = services.membership_update
    service_delete = services.membership_remove
    service_object_arg = "membership"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["organization", "user"] if obj is not None else []


class ApiKeyAdminForm(forms.ModelForm):  # type: ignore[type-arg]
    """Scopes as checkboxes (the model stores a JSON list); api_key_update checks them."""

    scopes = forms.MultipleChoiceField(
        choices=scopes.CHOICES,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="What the key may do (docs/security.md, API key scopes). None: nothing.",
    )

    class Meta:
        model = ApiKey
        fields = ["kind", "name", "user", "organization", "scopes", "revoked_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(ServiceAdmin):
    """Keys are created by the `create_organization` / `create_api_key` commands, which
    show the raw key once; here they are renamed, scoped or revoked (revoked_at), never
    given to someone else. No delete: a revoked key keeps its record."""

    form = ApiKeyAdminForm
    list_display = [
        "prefix",
        "name",
        "kind",
        "user",
        "organization",
        "scopes",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["kind"]
    readonly_fields = ["kind", "user", "organization", "prefix", "last_used_at", "created_at"]
    service_update = services.api_key_update


ATTEMPT_FIELDS = ("number", "outcome", "status_code", "duration_ms", "error", "created_at")


class DeliveryAttemptInline(ReadOnlyInline):
    model = DeliveryAttempt
    fields = ATTEMPT_FIELDS
    readonly_fields = ATTEMPT_FIELDS


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    """An outbox row: written by the services that send and the sender."""

    list_display = [
        "id",
        "source",
        "organization",
        "phone",
        "status",
        "attempts",
        "sent_at",
        "created_at",
    ]
    list_filter = ["source", "status"]
    search_fields = ["=id", "=phone"]
    inlines = [DeliveryAttemptInline]
    list_select_related = ["organization"]


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdmin):
    """A record of one call to the sender."""

    list_display = ["delivery", "number", "outcome", "status_code", "duration_ms", "created_at"]
    list_filter = ["outcome"]
    list_select_related = ["delivery"]
