"""The console's Events tab (issue 15 item 5) in a real browser: the organization's event
rules (an admin creates one, sees the API's field error beside its field, edits and
deletes one; a member reads them without the buttons), recent events live from the
`event_received` frames (processed, then a duplicate of the same idempotency key, with
what each scheduled, the repeat counted on the event's row), and the mailing form's
template preview rendered by the server (POST /api/templates/<id>/preview/), not in
JavaScript."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.console.conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def _templates(org):
    from mailing.services import template_create

    welcome = template_create(
        organization=org,
        title="Welcome",
        code="welcome",
        transport="email",
        subject="Welcome {{ name }}",
        body="Hi {{ name }}",
    )
    reminder = template_create(organization=org, title="Reminder", code="reminder", body="Hey")
    return welcome, reminder


def test_admin_keeps_rules_and_sees_events_live(agent, org, make_client, make_agent, web, new_page):
    from chat.models import Client
    from core.services import api_key_create
    from mailing.models import EventRule
    from mailing.services.events import event_rule_create

    welcome, reminder = _templates(org)
    existing = event_rule_create(organization=org, event="order_paid", template=reminder)
    page = new_page("alice", viewport={"width": 1280, "height": 800})
    page.get_by_role("button", name="Events", exact=True).click()
    rules = page.locator("#event-rules")
    expect(rules.locator(f'[data-id="{existing.pk}"] h3')).to_have_text("On order_paid: Reminder")

    # given a new rule whose cancellable action is not delayed: the API's field error
    page.get_by_role("button", name="New rule").click()
    form = page.locator("#rule-form")
    expect(form.get_by_label("Event name")).to_be_focused()
    form.get_by_label("Event name").fill("user_registered")
    form.get_by_label("Template").select_option(label="Welcome (welcome)")
    form.get_by_label("Transports").select_option(value="email,sms")
    form.get_by_label("Cancelled by events").fill("profile_completed")
    form.get_by_role("button", name="Create rule").click()
    expect(page.locator("#rule-cancel_events-error")).to_contain_text("delayed")
    expect(form.get_by_label("Cancelled by events")).to_have_attribute("aria-invalid", "true")
    assert not EventRule.objects.filter(event="user_registered").exists()
    # when it is fixed: created as typed
    form.get_by_label("Cancelled by events").fill("")
    form.get_by_role("button", name="Create rule").click()
    created = page.locator("#event-rules .event-rule", has_text="On user_registered: Welcome")
    expect(created).to_be_visible()
    rule = EventRule.objects.get(event="user_registered")
    assert (rule.template_id, rule.transports, rule.delay_seconds) == (
        welcome.pk,
        ["email", "sms"],
        0,
    )

    # an edit is a PATCH of the same rule
    page.get_by_role("button", name="Edit On order_paid: Reminder").click()
    page.locator("#rule-form").get_by_label("Priority (1-10)").fill("9")
    page.locator("#rule-form").get_by_label("Active").uncheck()
    page.get_by_role("button", name="Save rule").click()
    expect(rules.locator(f'[data-id="{existing.pk}"] p')).to_contain_text("priority 9")
    existing.refresh_from_db()
    assert (existing.priority, existing.active) == (9, False)

    # an external service posts an event, then posts it again: both rows appear live
    client = make_client(org)
    Client.objects.filter(pk=client.pk).update(email="new@example.test")
    _, raw = api_key_create(name="shop", organization=org, scopes=["events"])
    body = {"event": "user_registered", "client": "new@example.test", "idempotency_key": "r-1"}
    for expected in (201, 200):
        answer = httpx.post(
            f"{web.url}/api/events/", json=body, headers={"Authorization": f"Bearer {raw}"}
        )
        assert answer.status_code == expected, answer.text
    table = page.locator("#events-table")
    expect(table.locator("tr.event-row")).to_have_count(2)
    processed = table.locator('tr.event-row[data-status="processed"]')
    expect(processed.locator(".event-name")).to_have_text("user_registered")
    expect(processed.locator(".event-client")).to_have_text(str(client.uuid))
    mailing_id = answer.json()["mailings"][0]["id"]
    expect(processed.locator(".event-scheduled")).to_contain_text(f"#{mailing_id}")
    duplicate = table.locator('tr.event-row[data-status="duplicate"]')
    expect(duplicate.locator(".event-status")).to_have_text("duplicate")
    # the event's own row counts the repeat (from the frame), the duplicate's does not
    expect(processed.locator(".event-repeats")).to_contain_text("repeated 1 time, last")
    expect(duplicate.locator(".event-repeats")).to_have_count(0)
    screenshot(page, "events-panel.png")

    # a deletion asks first
    page.get_by_role("button", name="Delete On order_paid: Reminder").click()
    page.get_by_role("button", name="Delete rule").click()
    expect(rules.locator(f'[data-id="{existing.pk}"]')).to_have_count(0)
    assert not EventRule.objects.filter(pk=existing.pk).exists()
    assert page.errors == []

    # a member reads rules and events, without the admin's buttons
    make_agent("bob", org, role="agent")
    member = new_page("bob")
    member.get_by_role("button", name="Events", exact=True).click()
    expect(member.locator("#event-rules .event-rule")).to_have_count(1)
    expect(member.locator("#events-table tr.event-row")).to_have_count(1)
    # the repeat as the events API records it
    expect(member.locator("#events-table .event-repeats")).to_contain_text("repeated 1 time")
    expect(member.get_by_role("button", name="New rule")).to_have_count(0)
    expect(member.locator("#event-rules button")).to_have_count(0)


def test_the_mailing_forms_template_preview_is_the_servers(agent, org, make_client, new_page):
    from chat.services import help_desk_open
    from mailing.services import template_create

    # a value only the server knows: this month's conversations of the client
    client = make_client(org, name="Stat <i>Sam</i>")
    help_desk_open(client=client)
    template_create(
        organization=org,
        title="Monthly",
        code="monthly_personal_statistic",
        body="{{ name }}: {{ conversations }} conversation(s)",
    )
    page = new_page("alice")
    page.get_by_role("button", name="Mailings").click()
    page.get_by_label("Template").select_option(label="Monthly (monthly_personal_statistic)")
    page.get_by_label("Client", exact=True).select_option(value=str(client.uuid))
    preview = page.locator("#mailing-preview")
    expect(preview).to_have_text("Stat <i>Sam</i>: 1 conversation(s)")
    expect(preview).to_have_attribute("data-source", "server")
