"""Chat admin. Clients, help desks and assistance topics are written through the chat
services (core.service_admin.ServiceAdmin): their events are published after commit, a
deleted row's message files are removed with it. Messages, assistance requests and
webhook deliveries are written by the product only: read-only here."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext, gettext_lazy

from chat import clients, services
from chat.assistance import (
    assistance_topic_create,
    assistance_topic_delete,
    assistance_topic_update,
)
from chat.models import (
    AssistanceRequest,
    AssistanceTopic,
    AssistanceWebhook,
    AssistanceWebhookAttempt,
    Client,
    HelpDesk,
    Message,
)
from core.errors import ApplicationError
from core.service_admin import ReadOnlyAdmin, ReadOnlyInline, ServiceAdmin


@admin.register(Client)
class ClientAdmin(ServiceAdmin):
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
    service_create = clients.client_create
    service_update = clients.client_update
    service_delete = clients.client_delete

    fields = [
        "organization",
        "name",
        "phone",
        "operator_code",
        "email",
        "tag",
        "timezone",
        "language",
        "promo_opt_out",
        "email_promo_opt_out",
        "channel",
        "email_undeliverable",
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The channel is where the contact came from (a widget visitor, an email-only
        # contact) and undeliverable is set by bounces: neither is an admin's choice.
        fixed = ["channel", "email_undeliverable"]
        return ["organization", *fixed] if obj is not None else fixed  # a client does not move


MESSAGE_FIELDS = ("created_at", "type", "status", "message", "file_name")


class MessageInline(ReadOnlyInline):
    model = Message
    # Messages come through the API (status through the delivery receipts): never here.
    fields = MESSAGE_FIELDS
    readonly_fields = MESSAGE_FIELDS


def help_desk_open_new(*, client: Client) -> HelpDesk:
    """The admin's "add": a new open help desk, never the existing one reused."""
    help_desk, created = services.help_desk_open(client=client)
    if not created:
        raise ApplicationError(
            gettext("The client already has an open help desk."),
            fields={"client": [gettext("Already open: %(uuid)s.") % {"uuid": help_desk.uuid}]},
        )
    return help_desk


@admin.register(HelpDesk)
class HelpDeskAdmin(ServiceAdmin):
    list_display = [
        "uuid",
        "client",
        "organization",
        "status",
        "assignee",
        "received_count",
        "last_activity_at",
    ]
    list_filter = ["organization", "status"]
    search_fields = ["=uuid", "client__name", "client__phone"]
    raw_id_fields = ["client"]
    inlines = [MessageInline]
    service_create = help_desk_open_new
    service_update = services.help_desk_update
    service_delete = services.help_desk_delete
    # Written by the messages that arrive (each agent's reads are HelpDeskRead rows).
    activity = ["last_message", "received_count", "last_activity_at"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["client"]  # its organization is the client's
        return ["organization", "client", "status", "assignee", *self.activity]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [] if obj is None else ["organization", "client", *self.activity]

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return self.inlines if obj is not None else []  # a new help desk has no messages

    def service_update_kwargs(
        self, request: HttpRequest, obj: Any, form: Any, formsets: Any
    ) -> dict[str, Any]:
        kwargs = super().service_update_kwargs(request, obj, form, formsets)
        if "assignee" in kwargs["data"]:  # help_desk_update takes the agent's username
            user = kwargs["data"]["assignee"]
            kwargs["data"]["assignee"] = user.get_username() if user is not None else None
        return kwargs


@admin.register(Message)
class MessageAdmin(ServiceAdmin):
    """Agents' messages come through the API (its checks, its delivery), clients'
    through the inbound endpoint: never added or edited here. Deleting one (moderation)
    goes through the service, which removes its file and updates its help desk."""

    service_delete = services.message_delete

    list_display = ["uuid", "help_desk", "type", "status", "created_at"]
    list_filter = ["type", "status"]
    search_fields = ["=uuid", "message"]
    # The storage's own URL of a file leads nowhere (chat/files.py): its name as text.
    exclude = ["file"]
    readonly_fields = ["stored_file"]

    @admin.display(description=gettext_lazy("stored file"))
    def stored_file(self, obj: Message) -> str:
        return obj.file.name or "-"


# --- assistance (issue #4) --------------------------------------------------------------


class AssistanceTopicForm(forms.ModelForm):  # type: ignore[type-arg]
    """The team is one of the topic's organization's; the webhook secret is write-only
    (never rendered back): blank keeps it, `clear_webhook_secret` removes it. The URL is
    checked by the service."""

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

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        team = data.get("team")
        organization = data.get("organization") or getattr(self.instance, "organization", None)
        # The service finds the team by slug in the topic's organization: another
        # organization's team of the same slug must be refused here, not swapped.
        if team is not None and organization and team.organization_id != organization.pk:
            self.add_error("team", "A team of the topic's organization.")
        return data

    def secret(self) -> str | None:
        """The new secret, "" to remove it, None to keep it."""
        if self.cleaned_data.get("clear_webhook_secret"):
            return ""
        return self.cleaned_data.get("new_webhook_secret") or None


@admin.register(AssistanceTopic)
class AssistanceTopicAdmin(ServiceAdmin):
    form = AssistanceTopicForm
    list_display = ["name", "organization", "team", "webhook_url", "has_secret", "rr_next"]
    list_filter = ["organization"]
    search_fields = ["name"]
    service_create = assistance_topic_create
    service_update = assistance_topic_update
    service_delete = assistance_topic_delete
    service_object_arg = "topic"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        moved = ["organization"] if obj is not None else []  # a topic does not move
        return [*moved, "rr_next", "has_secret"]

    @admin.display(boolean=True, description=gettext_lazy("secret"))
    def has_secret(self, obj: AssistanceTopic) -> bool:
        return bool(obj.webhook_secret)

    def service_create_kwargs(self, request: HttpRequest, form: Any, formsets: Any) -> Any:
        data = form.cleaned_data
        team = data.get("team")
        return {
            "organization": data["organization"],
            "name": data["name"],
            "team_slug": team.slug if team is not None else None,
            "webhook_url": data.get("webhook_url") or "",
            "webhook_secret": form.secret() or "",
        }

    def service_update_kwargs(
        self, request: HttpRequest, obj: Any, form: Any, formsets: Any
    ) -> dict[str, Any]:
        kwargs = super().service_update_kwargs(request, obj, form, formsets)
        data = kwargs["data"]
        if "team" in data:  # the service takes the team's slug
            data["team"] = data["team"].slug if data["team"] is not None else None
        secret = form.secret()
        if secret is not None:
            data["webhook_secret"] = secret
        return kwargs


ATTEMPT_FIELDS: Any = ["number", "status_code", "duration_ms", "error", "created_at"]


class AssistanceWebhookAttemptInline(ReadOnlyInline):
    model = AssistanceWebhookAttempt
    fields = ATTEMPT_FIELDS
    readonly_fields = ATTEMPT_FIELDS


@admin.register(AssistanceWebhookAttempt)
class AssistanceWebhookAttemptAdmin(ReadOnlyAdmin):
    """A record of an HTTP call."""

    list_display = ["webhook", *ATTEMPT_FIELDS]
    list_select_related = ["webhook"]


@admin.register(AssistanceRequest)
class AssistanceRequestAdmin(ReadOnlyAdmin):
    """Created by POST /assistance/, routed and accepted by the assistance services."""

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


@admin.register(AssistanceWebhook)
class AssistanceWebhookAdmin(ReadOnlyAdmin):
    """An outbox row: written by the assistance services and the webhook sender."""

    list_display = ["id", "request", "event_type", "url", "status", "attempts", "created_at"]
    list_filter = ["status", "event_type"]
    inlines = [AssistanceWebhookAttemptInline]
