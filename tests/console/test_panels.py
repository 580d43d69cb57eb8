"""Console panels beside the chat (assistance requests, incidents) in a real browser."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import wait_until
from tests.console.conftest import cut_off, panel_activity, post_seed_triggers, screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_assistance_request_arrives_live_and_is_accepted(agent, make_client, web, worker, new_page):
    from chat.models import AssistanceTopic
    from core.models import Membership, Team, TeamMember
    from core.services import api_key_create

    team = Team.objects.create(organization=agent.organization, slug="sales-team", name="Sales")
    TeamMember.objects.create(team=team, membership=Membership.objects.get(user=agent.user))
    AssistanceTopic.objects.create(organization=agent.organization, name="sales", team=team)
    client = make_client(agent.organization, name="Quentin Quote")
    _, bot_key = api_key_create(name="bot", organization=agent.organization)

    page = new_page("alice")
    page.get_by_role("button", name="Assistance").click()
    expect(page.locator("#assistance-body")).to_contain_text("No assistance requests.")
    expect(page.get_by_label("Only my teams (sales-team)")).to_be_checked()

    response = httpx.post(
        f"{web.url}/assistance/",
        json={"topic": "sales", "description": "<b>wants</b> a quote", "phone": client.phone},
        headers={"Authorization": f"Bearer {bot_key}"},
    )
    assert response.status_code == 202, response.text
    card = page.locator(f'#assistance-list li[data-id="{response.json()["id"]}"]')
    expect(card).to_have_attribute("data-status", "routed", timeout=20_000)
    expect(card).to_contain_text("Assigned to you")
    expect(card.locator(".description")).to_have_text("<b>wants</b> a quote")
    expect(page.locator("#assistance-badge")).to_contain_text("1")
    screenshot(page, "assistance.png")

    card.get_by_role("button", name="Accept assistance request on sales").click()
    expect(card).to_have_attribute("data-status", "accepted")
    expect(card).to_contain_text("Accepted by alice")
    expect(page.locator("#assistance-badge")).to_be_hidden()

    card.get_by_role("button", name="Open conversation").click()
    expect(page.locator("#conv-title")).to_have_text("Quentin Quote")
    expect(page.locator("#tab-chat")).to_be_visible()
    assert page.errors == []


def test_incident_opens_live_with_its_level_and_is_acknowledged_then_resolved(
    agent, org, make_client, web, worker, new_page
):
    from core.services import api_key_create
    from escalation.demo import create
    from escalation.models import Incident, TriggerBatch

    make_client(org, tag="vip")
    create(organization=org)
    _, monitoring_key = api_key_create(name="monitoring", organization=org)

    page = new_page("alice")
    page.get_by_role("button", name="Incidents").click()
    expect(page.locator("#incidents-body")).to_contain_text("No open incidents.")

    post_seed_triggers(web, monitoring_key, times=3)
    card = page.locator("#incident-list li")
    expect(card).to_have_count(1, timeout=20_000)
    incident = wait_until(lambda: Incident.objects.first(), timeout=20)
    expect(card).to_have_attribute("data-id", str(incident.uuid))
    expect(card).to_have_attribute("data-status", "open")
    wait_until(lambda: not TriggerBatch.objects.filter(evaluated_at__isnull=True).exists())
    incident.refresh_from_db()
    expect(card).to_have_attribute("data-level", str(incident.level), timeout=20_000)
    expect(card.locator(".level")).to_have_text(f"Level {incident.level}")
    page.get_by_role("button", name="Incidents").click()  # refreshes the counts
    expect(card).to_contain_text(f"{incident.occurrences} occurrence(s)")
    expect(page.locator("#incidents-badge")).to_contain_text("1")
    screenshot(page, "incidents.png")

    card.get_by_role("button", name="Acknowledge incident").click()
    expect(card).to_have_attribute("data-status", "acknowledged")
    expect(card).to_contain_text("Acknowledged by alice")
    expect(page.locator("#incidents-badge")).to_be_hidden()
    card.get_by_role("button", name="Resolve incident").click()
    expect(page.locator("#incident-list li")).to_have_count(0)
    assert Incident.objects.get(pk=incident.pk).status == "resolved"
    assert page.errors == []


def test_only_my_teams_hides_other_teams_requests(agent, make_client, web, worker, new_page):
    from chat.models import AssistanceTopic
    from core.models import Membership, Team, TeamMember
    from core.services import api_key_create

    org = agent.organization
    mine = Team.objects.create(organization=org, slug="sales-team", name="Sales")
    TeamMember.objects.create(team=mine, membership=Membership.objects.get(user=agent.user))
    theirs = Team.objects.create(organization=org, slug="eng-team", name="Engineering")
    AssistanceTopic.objects.create(organization=org, name="sales", team=mine)
    AssistanceTopic.objects.create(organization=org, name="engineering", team=theirs)
    _, bot_key = api_key_create(name="bot", organization=org)

    page = new_page("alice")
    page.get_by_role("button", name="Assistance").click()
    only_mine = page.get_by_label("Only my teams (sales-team)")
    expect(only_mine).to_be_checked()
    ids = {}
    for topic in ("sales", "engineering"):
        response = httpx.post(
            f"{web.url}/assistance/",
            json={"topic": topic, "description": f"about {topic}"},
            headers={"Authorization": f"Bearer {bot_key}"},
        )
        assert response.status_code == 202, response.text
        ids[topic] = response.json()["id"]
    card = {t: page.locator(f'#assistance-list li[data-id="{n}"]') for t, n in ids.items()}

    only_mine.uncheck()  # everything: both arrive and are routed to their teams
    for topic, team in (("sales", "sales-team"), ("engineering", "eng-team")):
        expect(card[topic]).to_have_attribute("data-status", "routed", timeout=20_000)
        expect(card[topic]).to_contain_text(f"team {team}")
    page.get_by_label("Only my teams (sales-team)").check()
    expect(card["sales"]).to_have_count(1)
    expect(card["engineering"]).to_have_count(0)
    expect(page.locator("#assistance-list li")).to_have_count(1)
    expect(page.locator("#assistance-badge")).to_contain_text("1")
    page.get_by_label("Only my teams (sales-team)").uncheck()
    expect(page.locator("#assistance-list li")).to_have_count(2)
    assert page.errors == []


def test_panels_fit_a_phone_width(agent, make_client, web, worker, new_page):
    # the page is open first: the mailing and the incident are created elsewhere, live
    page = new_page("alice", viewport={"width": 390, "height": 844})
    acme = panel_activity(web, agent, make_client)
    # two more times: 5 occurrences reach the demo rule's customer warning, a mailing
    # the escalation creates (its name must say which rule, not a uuid)
    from core.services import api_key_create

    _, monitoring_key = api_key_create(name="monitoring-2", organization=agent.organization)
    post_seed_triggers(web, monitoring_key, times=2)
    # sideways: the page, the body, the panel; downwards: the page (only panels scroll)
    no_overflow = """() => {
        const doc = document.documentElement;
        const panel = document.querySelector("main > .tab:not([hidden])");
        return {doc: doc.scrollWidth - doc.clientWidth,
                body: document.body.scrollWidth - document.body.clientWidth,
                panel: panel.scrollWidth - panel.clientWidth,
                below: doc.scrollHeight - doc.clientHeight};
    }"""
    for tab, ready in (
        ("Assistance", f'#assistance-list li[data-id="{acme["assistance"]}"]'),
        ("Incidents", "#incident-list li"),
        ("Mailings", f'#mailing-live-list li[data-id="{acme["mailing"]}"][data-status="finished"]'),
    ):
        page.get_by_role("button", name=tab).click()
        expect(page.locator(ready)).to_have_count(1, timeout=30_000)
        if tab == "Mailings":
            page.locator(ready).get_by_role("button", name=re.compile("^Statistics of")).click()
            expect(page.locator(ready).get_by_role("img")).to_be_visible()
        if tab == "Mailings":  # named and dated without a reload, not "Mailing #1"
            card = page.locator(ready)
            expect(card.locator("h3")).to_contain_text("acme campaign")
            expect(card.locator(".mailing-dates")).to_contain_text("From")
            # every count shows whole inside its card (the table used to be cut off)
            assert cut_off(card, "table.counts-table th, table.counts-table td") == []
            warning = page.locator("#mailing-live-list li h3").filter(has_text="warning")
            expect(warning).to_have_count(1, timeout=30_000)
            expect(warning).to_contain_text(re.compile(r"^Login failing warning, \d{4}-\d\d-\d\d"))
        if tab == "Incidents":  # the rule's name, not its code
            expect(page.locator("#incident-list li .rule-name")).to_have_text("Login failing")
        overflow = page.evaluate(no_overflow)
        # neither the page nor the panel (which would scroll sideways inside) overflows
        assert overflow == {"doc": 0, "body": 0, "panel": 0, "below": 0}, (tab, overflow)
        if tab == "Mailings":  # the statistics, then the cards' names from the top
            screenshot(page, "phone-mailing-stats.png")
            page.locator("#tab-mailings").evaluate("panel => panel.scrollTo(0, 0)")
        screenshot(page, f"phone-{tab.lower()}.png")
    assert page.errors == []
