"""Routes outside /api/ kept for seed compatibility (POST /assistance/, issue #4)."""

from __future__ import annotations

from django.urls import path

from chat import assistance_api

urlpatterns = [
    path("assistance/", assistance_api.AssistanceCreateView.as_view(), name="assistance-create"),
]
