"""The agent console (issue #5): a login page and one page of static JavaScript.

Everything the page shows comes from the REST API and the websocket hub; these views
only authenticate (Django session) and hand the page its configuration.
"""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie

from core.i18n import user_time_zone
from core.models import TeamMember
from core.throttles import login_rate_limited

login = login_rate_limited(auth_views.LoginView.as_view(template_name="registration/login.html"))
logout = auth_views.LogoutView.as_view(next_page="/")


@never_cache
@ensure_csrf_cookie
def home(request: HttpRequest) -> HttpResponseBase:
    """`/`: the login form for an anonymous visitor, the console for an agent."""
    if not request.user.is_authenticated:
        return login(request)
    # The agent's teams per organization: the assistance panel shows their requests first.
    teams: dict[str, list[str]] = {}
    for org_slug, team_slug in TeamMember.objects.filter(
        membership__user_id=request.user.pk
    ).values_list("team__organization__slug", "team__slug"):
        teams.setdefault(org_slug, []).append(team_slug)
    config = {
        "username": request.user.get_username(),
        "logout_url": "/logout/",
        "teams": teams,
        # The zone the agent saved ("": the browser's): static/console/dom.js formats in it.
        "time_zone": getattr(user_time_zone(request.user.pk), "key", ""),
    }
    return render(request, "console/app.html", {"config": config})
