"""The console for a support team (issue 13) in a real browser: status, assignment and
views with counts, private notes, canned replies, the customer context, search, alerts
and deep links, as agents use them; screenshots at 1280x800 and 390x844."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.console.conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

SHARED_WORKER = False  # nothing here needs the sender: replies are not checked for delivery
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def row(page, desk):
    return page.locator(f'#inbox-list button[data-desk="{desk.uuid}"]')


def view(page, name):
    return page.locator(f'#inbox-views button[data-view="{name}"]')


def inbound(web, agent, phone, text):
    response = httpx.post(
        f"{web.url}/api/inbound-message/",
        json={"organization": agent.organization.slug, "phone": phone, "message": text},
        headers={"Authorization": f"Bearer {agent.key}"},
    )
    assert response.status_code == 201, response.text


def test_status_assignment_and_views_follow_live_on_every_agents_page(
    agent, make_agent, org, make_client, web, new_page
):
    from chat.models import HelpDesk
    from chat.services import help_desk_open

    make_agent("bob", org, role="agent")
    olga, _ = help_desk_open(client=make_client(org, name="Olga Older"))
    nina, _ = help_desk_open(client=make_client(org, name="Nina Newer"))
    inbound(web, agent, olga.client.phone, "my order is late")
    alice, bob = new_page("alice", viewport=DESKTOP), new_page("bob")
    for page in (alice, bob):
        expect(row(page, olga)).to_be_visible()
        expect(view(page, "all")).to_have_attribute("aria-pressed", "true")
        expect(view(page, "all").locator(".count")).to_have_text("2")
        expect(view(page, "unassigned").locator(".count")).to_have_text("2")

    # alice takes Olga's conversation: assigned to her, and bob sees it move
    row(alice, olga).click()
    alice.get_by_label("Assignee").select_option(label="alice (you)")
    expect(row(alice, olga).locator(".desk-assignee")).to_have_text("you")
    expect(row(bob, olga).locator(".desk-assignee")).to_have_text("alice")
    expect(view(bob, "unassigned").locator(".count")).to_have_text("1")
    view(alice, "mine").click()
    expect(alice.locator("#inbox-list button[data-desk]")).to_have_count(1)
    expect(view(alice, "mine").locator(".count")).to_have_text("1")

    # alice hands Nina's to bob: bob's "Mine" has it, live
    view(bob, "mine").click()
    expect(bob.locator("#inbox-list button[data-desk]")).to_have_count(0)
    view(alice, "all").click()
    row(alice, nina).click()
    alice.get_by_label("Assignee").select_option(label="bob")
    expect(row(bob, nina)).to_be_visible()
    expect(view(bob, "mine").locator(".count")).to_have_text("1")
    assert HelpDesk.objects.get(pk=nina.pk).assignee.username == "bob"

    # pending, then snoozed until a time, then resolved: each shown everywhere
    row(alice, olga).click()
    status = alice.locator("#status-buttons")
    status.get_by_role("button", name="Pending").click()
    expect(status.get_by_role("button", name="Pending")).to_have_attribute("aria-pressed", "true")
    view(bob, "all").click()
    expect(row(bob, olga).locator(".chip")).to_have_text("Pending")
    status.get_by_role("button", name="Snooze…").click()
    alice.get_by_label("Snooze until").fill("2031-01-02T09:30")
    alice.locator("#snooze-form").get_by_role("button", name="Snooze", exact=True).click()
    expect(alice.locator("#snoozed-note")).to_contain_text("Snoozed until")
    expect(row(bob, olga).locator(".chip")).to_have_text("Snoozed")
    screenshot(alice, "workflow.png")
    # a client message reopens a snoozed conversation (the server's rule), live
    inbound(web, agent, olga.client.phone, "hello again?")
    expect(row(bob, olga).locator(".chip")).to_have_count(0)
    expect(status.get_by_role("button", name="Open", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    status.get_by_role("button", name="Resolve").click()
    # resolved conversations leave the default views (the one being read stays)
    expect(row(bob, olga)).to_have_count(0)
    expect(view(bob, "all").locator(".count")).to_have_text("1")
    bob.locator("#filter-status").select_option("resolved")
    expect(row(bob, olga).locator(".chip")).to_have_text("Resolved")
    expect(bob.locator("#inbox-list button[data-desk]")).to_have_count(1)
    assert HelpDesk.objects.get(pk=olga.pk).status == "resolved"
    assert alice.errors == [] and bob.errors == []
