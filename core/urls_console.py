"""The agent console's pages (issue #5): `/` (login or console), `/login/`, `/logout/`."""

from __future__ import annotations

from django.urls import path

from core import console

urlpatterns = [
    path("", console.home, name="console"),
    path("login/", console.login, name="login"),
    path("logout/", console.logout, name="logout"),
]
