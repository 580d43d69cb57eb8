"""The console's times in the agent's saved time zone (issue 16), in a real browser: by
default the browser's zone; after the agent picks another one next to the language, the
page reloads and every time reads in the saved zone, whatever the browser's.
Screenshot: tests/artifacts/time-zone-saved.png."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.console.conftest import login, screenshot

pytestmark = pytest.mark.django_db(transaction=True)

SHARED_WORKER = False  # nothing here sends messages

BROWSER_ZONE = "America/Sao_Paulo"  # UTC-3
SAVED_ZONE = "Asia/Tehran"  # UTC+3:30: the minutes differ too, not only the hour


@pytest.fixture
def page_in_sao_paulo(browser: Any, web: Any) -> Iterator[Any]:
    context = browser.new_context(
        base_url=web.url,
        locale="en-US",
        timezone_id=BROWSER_ZONE,
        viewport={"width": 1280, "height": 800},
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    context.close()


def _clock(when: Any, zone: str) -> str:
    """en-US's two-digit hour and minute (Intl's `hour: "2-digit", minute: "2-digit"`)."""
    return when.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%I:%M %p")


def _shown(page: Any) -> str:
    text = page.locator("#inbox-list .desk-time").first.inner_text()
    return text.replace("\u202f", " ").replace("\xa0", " ").strip()


def test_message_time_in_the_saved_zone_not_the_browsers(agent, page_in_sao_paulo):
    from chat.services import message_receive
    from core.models import AgentPreference

    page = page_in_sao_paulo
    message = message_receive(
        organization=agent.organization, phone="79160000001", text="Hello", name="Olga"
    )
    desk = message.help_desk
    desk.refresh_from_db()
    when = desk.last_activity_at
    assert _clock(when, BROWSER_ZONE) != _clock(when, SAVED_ZONE)

    # given: nothing saved, the browser's zone
    login(page, agent.user.username)
    expect(page.locator("#inbox-list .desk-time").first).to_be_visible()
    assert _shown(page) == _clock(when, BROWSER_ZONE)

    # when: the agent picks a zone next to the language
    page.locator("#prefs summary").click()
    picker = page.locator("#pref-time-zone")
    expect(picker).to_have_value("")
    with page.expect_navigation():
        picker.select_option(SAVED_ZONE)

    # then: saved, and the reloaded page shows the time in it
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "live")
    expect(page.locator("#inbox-list .desk-time").first).to_be_visible()
    assert AgentPreference.objects.get(user=agent.user).time_zone == SAVED_ZONE
    assert _shown(page) == _clock(when, SAVED_ZONE)
    page.locator("#prefs summary").click()
    expect(page.locator("#pref-time-zone")).to_have_value(SAVED_ZONE)
    screenshot(page, "time-zone-saved.png")

    # and back to the browser's
    with page.expect_navigation():
        page.locator("#pref-time-zone").select_option("")
    expect(page.locator("#inbox-list .desk-time").first).to_be_visible()
    assert _shown(page) == _clock(when, BROWSER_ZONE)
    assert page.errors == []


def test_snooze_until_a_time_on_the_saved_zones_clock(agent, page_in_sao_paulo):
    from datetime import UTC, datetime

    from chat.models import HelpDesk
    from chat.services import message_receive
    from core.models import AgentPreference

    page = page_in_sao_paulo
    AgentPreference.objects.create(user=agent.user, time_zone=SAVED_ZONE)
    desk = message_receive(
        organization=agent.organization, phone="79160000002", text="Hi", name="Nina"
    ).help_desk

    login(page, agent.user.username)
    page.locator(f'#inbox-list button[data-desk="{desk.uuid}"]').click()
    page.locator("#status-buttons").get_by_role("button", name="Snooze…").click()
    page.get_by_label("Snooze until").fill("2031-01-02T09:30")
    page.locator("#snooze-form").get_by_role("button", name="Snooze", exact=True).click()
    expect(page.locator("#snoozed-note")).to_contain_text("9:30")

    # 09:30 in Tehran (UTC+3:30) is 06:00 UTC; read in São Paulo's zone it would be 12:30
    desk.refresh_from_db()
    assert desk.status == HelpDesk.Status.SNOOZED
    assert desk.snoozed_until == datetime(2031, 1, 2, 6, 0, tzinfo=UTC)
    assert page.errors == []
