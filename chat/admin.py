from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from chat.files import files_delete_on_commit, message_files
from chat.models import (
    AssistanceRequest,
    AssistanceTopic,
    AssistanceWebhook,
    AssistanceWebhookAttempt,
    Client,
    HelpDesk,
    Message,
)
from core.admin import ReadOnlyAdmin
from core.outbound import public_url_problem


class DeletesMessageFiles:
    """Removes the files of the messages an admin deletion takes with it, after commit
    (chat/files.py). `message_lookup` names the deleted objects from a Message."""

    message_lookup = ""

    def _files(self, pks: list[Any]) -> list[tuple[int, str]]:
        return message_files(Message.objects.filter(**{f"{self.message_lookup}__in": pks}))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        files_delete_on_commit(self._files([obj.pk]))
        super().delete_model(request, obj)  # type: ignore[misc]

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        files_delete_on_commit(self._files(list(queryset.values_list("pk", flat=True))))
        super().delete_queryset(request, queryset)  # type: ignore[misc]


@admin.register(Client)
class ClientAdmin(DeletesMessageFiles, admin.ModelAdmin):
    message_lookup = "help_desk__client"
    list_display = [
        "name",
        "phone",
        "operator_code",
        "tag",
        "timezone",
        "organization",
        "promo_opt_out",
    ]
    list_filter = ["organization", "tag", "operator_code"]
    search_fields = ["name", "phone", "=uuid"]


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["created_at", "type", "status", "message", "file_name"]
    # Status moves forward only, through the delivery receipts (with events): never here.
    # Files come only through the API, which checks their size and type.
    readonly_fields = ["created_at", "status", "file_name"]


@admin.register(HelpDesk)
class HelpDeskAdmin(DeletesMessageFiles, admin.ModelAdmin):
    message_lookup = "help_desk"
    list_display = [
        "uuid",
        "client",
        "organization",
        "status",
        "assignee",
        "unread_count",
        "last_activity_at",
    ]
    list_filter = ["organization", "status"]
    search_fields = ["=uuid", "client__name", "client__phone"]
    raw_id_fields = ["client", "last_message"]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(DeletesMessageFiles, admin.ModelAdmin):
    message_lookup = "pk"
    list_display = ["uuid", "help_desk", "type", "status", "created_at"]
    list_filter = ["type", "status"]
    search_fields = ["=uuid", "message"]
    raw_id_fields = ["help_desk", "delivery", "sender"]
    # Files come only through the API, which checks their size and type; the storage's
    # own URL of a file leads nowhere (chat/files.py), so the name is shown as text.
    exclude = ["file"]
    readonly_fields = ["status", "stored_file", "file_name"]

    @admin.display(description="stored file")
    def stored_file(self, obj: Message) -> str:
        return obj.file.name or "-"


# --- assistance (issue #4) --------------------------------------------------------------


class AssistanceTopicForm(forms.ModelForm):  # type: ignore[type-arg]
    """The team is one of the topic's organization's; the webhook secret is write-only
    (never rendered back): blank keeps it, `clear_webhook_secret` removes it."""

    new_webhook_secret = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.PasswordInput(render_value=False),
        label="Webhook secret",
        help_text="Write-only. Leave blank to keep the current one.",
    )
    clear_webhook_secret = forms.BooleanField(required=False, label="Remove the secret")

    class Meta:
        model = AssistanceTopic
        fields = ["organization", "name", "team", "webhook_url"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.organization_id and "team" in self.fields:
            field = self.fields["team"]
            field.queryset = field.queryset.filter(  # type: ignore[attr-defined]
                organization_id=self.instance.organization_id
            )

    def clean_webhook_url(self) -> str:
        url: str = self.cleaned_data.get("webhook_url") or ""
        # An unchanged URL is not re-resolved: editing the team must not fail on its DNS.
        if url and "webhook_url" in self.changed_data:
            error = public_url_problem(url, label="Webhook URL")
            if error is not None:
                raise forms.ValidationError(error)
        return url

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        team, organization = data.get("team"), data.get("organization")
        if (
            team is not None
            and organization is not None
            and team.organization_id != organization.pk
        ):
            self.add_error("team", "A team of the topic's organization.")
        return data

    def save(self, commit: bool = True) -> AssistanceTopic:
        topic = super().save(commit=False)
        if self.cleaned_data.get("clear_webhook_secret"):
            topic.webhook_secret = ""
        elif self.cleaned_data.get("new_webhook_secret"):
            topic.webhook_secret = self.cleaned_data["new_webhook_secret"]
        if commit:
            topic.save()
        return topic


@admin.register(AssistanceTopic)
class AssistanceTopicAdmin(admin.ModelAdmin):
    form = AssistanceTopicForm
    list_display = ["name", "organization", "team", "webhook_url", "has_secret", "rr_next"]
    list_filter = ["organization"]
    search_fields = ["name"]
    readonly_fields = ["rr_next", "has_secret"]

    @admin.display(boolean=True, description="secret")
    def has_secret(self, obj: AssistanceTopic) -> bool:
        return bool(obj.webhook_secret)


ATTEMPT_FIELDS: Any = ["number", "status_code", "duration_ms", "error", "created_at"]


class AssistanceWebhookAttemptInline(admin.TabularInline):
    model = AssistanceWebhookAttempt
    extra = 0
    fields = ATTEMPT_FIELDS
    readonly_fields = ATTEMPT_FIELDS
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AssistanceWebhookAttempt)
class AssistanceWebhookAttemptAdmin(ReadOnlyAdmin):
    """A record of an HTTP call."""

    list_display = ["webhook", *ATTEMPT_FIELDS]
    list_select_related = ["webhook"]


@admin.register(AssistanceRequest)
class AssistanceRequestAdmin(admin.ModelAdmin):
    list_display = [
        "uuid",
        "organization",
        "topic",
        "status",
        "assignee",
        "accepted_by",
        "created_at",
    ]
    list_filter = ["organization", "status", "topic"]
    search_fields = ["=uuid", "description"]
    raw_id_fields = ["client", "help_desk", "assignee", "accepted_by"]


@admin.register(AssistanceWebhook)
class AssistanceWebhookAdmin(admin.ModelAdmin):
    list_display = ["id", "request", "event_type", "url", "status", "attempts", "created_at"]
    list_filter = ["status", "event_type"]
    raw_id_fields = ["request"]
    inlines = [AssistanceWebhookAttemptInline]
