"""An agent's saved time zone (issue 16): validated against zoneinfo by
`/api/me/preferences/`, and the zone server-rendered times read in, over the browser's
`tz` cookie. The console's own formatting is tested in a browser
(tests/console/test_time_zone_browser.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import Client as DjangoClient
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient

from core.i18n import AgentLanguageMiddleware, user_time_zone
from core.models import AgentPreference

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("compiled_catalogs")]


def test_saved_time_zone_round_trip_and_cleared(agent):
    api = agent.client()
    assert api.get("/api/me/preferences/").json()["time_zone"] == ""
    saved = api.patch("/api/me/preferences/", {"time_zone": "Asia/Tokyo"}, format="json")
    assert saved.status_code == 200, saved.content
    assert saved.json()["time_zone"] == "Asia/Tokyo"
    assert api.get("/api/me/preferences/").json()["time_zone"] == "Asia/Tokyo"
    assert str(user_time_zone(agent.user.pk)) == "Asia/Tokyo"
    # blank: back to the browser's
    assert api.patch("/api/me/preferences/", {"time_zone": ""}, format="json").status_code == 200
    assert user_time_zone(agent.user.pk) is None


@pytest.mark.parametrize(
    "value",
    [
        "Mars/Olympus_Mons",
        "../../etc/passwd",
        "asia/tokyo",
        "Europe/Moscow\x00",
        "x" * 500,
        ["UTC"],
    ],
)
def test_a_bad_time_zone_is_a_400_with_a_field_error(agent, value):
    api = agent.client()
    response = api.patch("/api/me/preferences/", {"time_zone": value}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"]["time_zone"]
    assert not AgentPreference.objects.filter(user=agent.user).exclude(time_zone="").exists()


def test_the_field_error_in_russian(agent):
    response = agent.client().patch(
        "/api/me/preferences/",
        {"time_zone": "Mars/Olympus_Mons"},
        format="json",
        HTTP_ACCEPT_LANGUAGE="ru",
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["time_zone"] == [
        "Неизвестный часовой пояс: укажите имя IANA, например Europe/Moscow."
    ]


def test_anonymous_cannot_read_or_set_a_time_zone():
    assert APIClient().patch("/api/me/preferences/", {"time_zone": "UTC"}).status_code == 401


def _zone_seen(user: Any, cookie: str) -> str:
    seen = []

    def view(request: Any) -> HttpResponse:
        seen.append(timezone.get_current_timezone_name())
        return HttpResponse()

    request = RequestFactory().get("/")
    request.COOKIES["tz"] = cookie
    request.user = user
    AgentLanguageMiddleware(view)(request)
    return seen[0]


def test_server_times_read_in_the_saved_zone_over_the_browsers(agent):
    assert _zone_seen(agent.user, "America/Sao_Paulo") == "America/Sao_Paulo"  # none saved
    AgentPreference.objects.create(user=agent.user, time_zone="Asia/Tokyo")
    assert _zone_seen(agent.user, "America/Sao_Paulo") == "Asia/Tokyo"
    # a zone saved before it left the tz database: the browser's, never an error
    AgentPreference.objects.filter(user=agent.user).update(time_zone="Gone/Away")
    assert _zone_seen(agent.user, "America/Sao_Paulo") == "America/Sao_Paulo"


def test_admin_page_shows_a_time_in_the_saved_zone(django_user_model, org):
    from mailing.services import mailing_create

    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root")
    AgentPreference.objects.create(user=user, time_zone="Asia/Tokyo")
    start = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)  # 12:04 in Tokyo, 00:04 in São Paulo
    mailing = mailing_create(
        organization=org, text="hi", start_at=start, end_at=start.replace(hour=5)
    )
    browser = DjangoClient()
    browser.force_login(user)
    browser.cookies["tz"] = "America/Sao_Paulo"
    page = browser.get(f"/admin/mailing/mailing/{mailing.pk}/change/").content.decode()
    assert 'value="12:04' in page and 'value="00:04' not in page


def test_console_page_hands_the_saved_zone_to_its_scripts(agent):
    browser = DjangoClient()
    browser.force_login(agent.user)
    assert '"time_zone": ""' in browser.get("/").content.decode()
    AgentPreference.objects.create(user=agent.user, time_zone="Asia/Tokyo")
    assert '"time_zone": "Asia/Tokyo"' in browser.get("/").content.decode()
