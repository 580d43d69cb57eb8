"""Routes outside /api/: the unsubscribe link of promotional email (RFC 8058)."""

from __future__ import annotations

from django.urls import path

from mailing import unsubscribe_views

urlpatterns = [
    path("u/<str:token>/", unsubscribe_views.unsubscribe, name="email-unsubscribe"),
]
