from __future__ import annotations

from django import forms
from django.contrib import admin

from core import scopes
from core.models import ApiKey, Delivery, DeliveryAttempt, Membership, Organization
from core.service_admin import ReadOnlyAdmin

__all__ = ["ReadOnlyAdmin"]  # its home was here: admins import it from either


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "is_available"]
    list_filter = ["role", "organization"]


class ApiKeyAdminForm(forms.ModelForm):
    """Scopes as checkboxes (the model stores a JSON list), checked by the same
    `validate_scopes` as `create_api_key`."""

    scopes = forms.MultipleChoiceField(
        choices=scopes.CHOICES,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="What the key may do (docs/security.md, API key scopes). None: nothing.",
    )

    class Meta:
        model = ApiKey
        fields = ["kind", "name", "user", "organization", "scopes", "revoked_at"]

    def clean_scopes(self) -> list[str]:
        try:
            return scopes.validate_scopes(list(self.cleaned_data.get("scopes") or []))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    # Keys are created with `create_organization` / `create_api_key`: the raw key
    # is shown once there and cannot be recovered here.
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
    readonly_fields = ["prefix", "key_hash", "last_used_at", "created_at"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    readonly_fields = ["number", "outcome", "status_code", "duration_ms", "error", "created_at"]
    can_delete = False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
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
