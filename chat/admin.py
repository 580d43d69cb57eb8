from __future__ import annotations

from django.contrib import admin

from chat.models import (
    AssistanceRequest,
    AssistanceTopic,
    AssistanceWebhook,
    AssistanceWebhookAttempt,
    Client,
    HelpDesk,
    Message,
)


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
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
    fields = ["created_at", "type", "status", "message", "file"]
    readonly_fields = ["created_at"]


@admin.register(HelpDesk)
class HelpDeskAdmin(admin.ModelAdmin):
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
class MessageAdmin(admin.ModelAdmin):
    list_display = ["uuid", "help_desk", "type", "status", "created_at"]
    list_filter = ["type", "status"]
    search_fields = ["=uuid", "message"]
    raw_id_fields = ["help_desk", "delivery", "sender"]


# --- assistance (issue #4) --------------------------------------------------------------


@admin.register(AssistanceTopic)
class AssistanceTopicAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "team", "webhook_url", "rr_next"]
    list_filter = ["organization"]
    search_fields = ["name"]
    readonly_fields = ["rr_next"]


class AssistanceWebhookAttemptInline(admin.TabularInline):
    model = AssistanceWebhookAttempt
    extra = 0
    readonly_fields = ["number", "status_code", "duration_ms", "error", "created_at"]
    can_delete = False


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
