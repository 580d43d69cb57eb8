"""Issue 13 at 390x844: what test_workflow.py does at 1280x800 (status, assignment to an
agent and a team, snooze, search, the canned-reply picker, a private note, the alerts
settings), done on a phone, each step checked to fit the width and screenshotted."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.console.conftest import cut_off, screenshot
from tests.console.test_workflow import PHONE, inbound, row

pytestmark = pytest.mark.django_db(transaction=True)

# Nothing sideways (page, body, the section shown) and nothing below: only the app's
# own areas scroll, the page itself never does.
FITS = """() => {
    const doc = document.documentElement;
    const tab = document.querySelector("main > .tab:not([hidden])");
    return {doc: doc.scrollWidth - doc.clientWidth,
            body: document.body.scrollWidth - document.body.clientWidth,
            tab: tab.scrollWidth - tab.clientWidth,
            below: doc.scrollHeight - doc.clientHeight};
}"""
FITTING = {"doc": 0, "body": 0, "tab": 0, "below": 0}


def within_width(locator):
    box = locator.bounding_box()
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]


def test_a_support_day_on_a_phone(agent, make_agent, org, make_client, web, new_page):
    from chat.models import CannedReply, HelpDesk
    from chat.services import help_desk_open
    from core.models import Team

    make_agent("bob", org, role="agent")
    Team.objects.create(organization=org, slug="billing", name="Billing")
    CannedReply.objects.create(
        organization=org,
        shortcut="refund",
        title="Refund under way",
        text="Hello {{ name }}, your refund is on its way.",
    )
    olga, _ = help_desk_open(client=make_client(org, name="Olga Older", tag="vip"))
    inbound(web, agent, olga.client.phone, "my parcel is late, where is my refund?")
    page = new_page("alice", viewport=PHONE)

    # search: a word of the message finds it, marked; the results take the inbox's place
    box = page.get_by_label("Search clients and messages")
    box.fill("parcel")
    hits = page.locator("#search-messages li")
    expect(hits).to_have_count(1)
    expect(hits.locator("mark")).to_have_text(["parcel"])
    assert page.evaluate(FITS) == FITTING
    screenshot(page, "phone-search.png")
    box.press("Escape")
    expect(page.locator("#inbox-list")).to_be_visible()

    # the conversation: assign it to herself and to a team, then open the snooze box
    row(page, olga).click()
    expect(page.locator("#conv-title")).to_have_text("Olga Older")
    page.get_by_label("Assignee").select_option(label="alice (you)")
    page.locator("#conv-team").select_option(label="Billing")
    page.locator("#status-buttons").get_by_role("button", name="Snooze…").click()
    expect(page.get_by_label("Snooze until")).to_be_visible()
    header = page.locator(".conv-header")
    assert cut_off(header, "button, select, input") == []
    assert page.evaluate(FITS) == FITTING
    screenshot(page, "phone-workflow.png")
    page.get_by_label("Snooze until").fill("2031-01-02T09:30")
    page.locator("#snooze-form").get_by_role("button", name="Snooze", exact=True).click()
    expect(page.locator("#snoozed-note")).to_contain_text("Snoozed until")
    desk = HelpDesk.objects.select_related("assignee", "team").get(pk=olga.pk)
    assert (desk.status, desk.assignee.username, desk.team.name) == ("snoozed", "alice", "Billing")

    # the canned-reply picker opens above the reply box, inside the screen
    reply = page.get_by_label("Reply")
    reply.press_sequentially("/ref")
    picker = page.locator("#canned-list")
    expect(picker.get_by_role("option")).to_have_count(1)
    assert within_width(picker)
    assert page.evaluate(FITS) == FITTING
    screenshot(page, "phone-canned-picker.png")
    reply.press("Enter")
    expect(reply).to_have_value("Hello Olga Older, your refund is on its way.")
    reply.press("Enter")
    sent = page.locator("#message-list li.msg-out").filter(has_text="your refund is on its way")
    expect(sent.locator(".msg-by")).to_have_text("You")

    # a private note mentioning a colleague, in its own look
    page.get_by_role("button", name="Note", exact=True).click()
    page.get_by_label("Private note").fill("@bob the parcel is with the courier")
    page.get_by_role("button", name="Add note").click()
    note = page.locator("#message-list li.note").filter(has_text="with the courier")
    expect(note.locator(".msg-by")).to_contain_text("only agents see this")
    assert within_width(note)
    assert page.evaluate(FITS) == FITTING
    screenshot(page, "phone-notes.png")

    # the alerts settings open inside the screen, every control whole
    page.get_by_text("Alerts").click()
    settings = page.locator(".prefs-box")
    expect(settings.get_by_label("Desktop notifications")).to_be_visible()
    expect(settings.get_by_label("Time zone")).to_be_visible()
    assert within_width(settings)
    assert cut_off(settings, "input, select, p") == []
    assert page.evaluate(FITS) == FITTING
    screenshot(page, "phone-alerts.png")
    page.get_by_text("Alerts").click()

    # back in the inbox, its views count her conversation as hers
    page.get_by_role("button", name="← Inbox").click()
    expect(page.locator('#inbox-views button[data-view="mine"] .count')).to_have_text("1")
    expect(row(page, olga).locator(".chip")).to_have_text(re.compile("Snoozed"))
    assert page.errors == []
