from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core import i18n, people_api, views
from core.throttles import login_rate_limited

urlpatterns = [
    # The website widget's public API (CORS for the inbox's allowed origins only). First:
    # Django tries the patterns in order, and every include it passes on the way costs
    # (it lists what it tried), for every visitor's request. Nothing else starts with
    # widget/api/.
    path("widget/api/<str:token>/", include("widget.urls_public")),
    # Before the admin's own routes: failed logins are limited like the console's.
    path("admin/login/", login_rate_limited(admin.site.login)),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file (/docs/?script=):
    # the Content-Security-Policy allows no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("health/", views.health, name="health"),
    # JavaScript strings of the console and the widget (issue 16; core/i18n.py).
    path("jsi18n/", i18n.javascript_catalog, name="javascript-catalog"),
    path("metrics", views.metrics, name="metrics"),
    path("api/organizations/", views.OrganizationListView.as_view(), name="organizations"),
    # the console's pickers and settings (issue 13)
    path(
        "api/organizations/<str:slug>/members/",
        people_api.MemberListView.as_view(),
        name="organization-members",
    ),
    path("api/me/preferences/", people_api.PreferenceView.as_view(), name="preferences"),
    path("api/", include("chat.urls")),
    path("", include("chat.urls_root")),
    path("api/", include("mailing.urls")),
    path("", include("mailing.urls_root")),  # /u/<token>/: email unsubscribe (RFC 8058)
    path("api/", include("widget.urls")),
    path("", include("escalation.urls")),
    path("", include("core.urls_console")),
    # No /media/ route: customer files are served only to those allowed to read the
    # message, by chat/files.py (docs/security.md, "Customer files").
]
