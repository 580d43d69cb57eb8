"""Routes outside /api/ kept for seed compatibility (POST /assistance/, issue #4)."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
