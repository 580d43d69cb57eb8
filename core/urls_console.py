"""The agent console's pages (issue #5). Empty until the console lands."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
