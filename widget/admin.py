"""Widget admin: inboxes are written through widget.inboxes (ServiceAdmin); visitors
and ratings are written by the widget only (read-only here)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.service_admin import ReadOnlyAdmin, ServiceAdmin
from widget import inboxes
from widget.models import Rating, Visitor, WebInbox


@admin.register(WebInbox)
class WebInboxAdmin(ServiceAdmin):
    list_display = ["name", "organization", "token", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name", "=token"]
    service_create = inboxes.web_inbox_create
    service_update = inboxes.web_inbox_update
    service_delete = inboxes.web_inbox_delete

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Token and secret are generated (and rotated through the API), never typed in.
        fixed = ["token", "secret", "created_at", "updated_at"]
        return [*fixed, "organization"] if obj is not None else fixed


@admin.register(Visitor)
class VisitorAdmin(ReadOnlyAdmin):
    list_display = ["uuid", "inbox", "user_id", "page_url", "last_seen_at"]
    list_filter = ["inbox"]
    search_fields = ["=uuid", "=user_id"]


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin):
    list_display = ["help_desk", "inbox", "score", "created_at"]
    list_filter = ["organization", "score"]
