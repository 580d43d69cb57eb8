"""The console's website-inbox panel (issue 14 item 1) in a real browser: an admin creates
an inbox (the secret shown once, copied), edits it with a bad origin (the API's field
error beside the field, nothing saved), fixes it, rotates the secret and deletes another
inbox; the satisfaction statistics; a member reads the list without the admin's buttons;
the panel fits a phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_until
from tests.console.conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
NO_OVERFLOW = """() => {
    const doc = document.documentElement;
    const panel = document.querySelector("main > .tab:not([hidden])");
    return {doc: doc.scrollWidth - doc.clientWidth,
            body: document.body.scrollWidth - document.body.clientWidth,
            panel: panel.scrollWidth - panel.clientWidth};
}"""


TABS_WHOLE = """() => Array.from(document.querySelectorAll(".tab-button")).every(
    (b) => b.scrollWidth <= b.clientWidth && b.getBoundingClientRect().right <= innerWidth)"""


def _rated_inbox(org, make_client, scores):
    """An inbox whose (resolved) conversations were rated `scores`."""
    from chat.services import help_desk_open
    from widget.inboxes import web_inbox_create
    from widget.models import Rating

    inbox = web_inbox_create(
        organization=org, name="Old shop", allowed_origins=["https://old.example"]
    )
    for score in scores:
        desk, _ = help_desk_open(client=make_client(org))
        Rating.objects.create(organization=org, inbox=inbox, help_desk=desk, score=score)
    return inbox


def test_admin_creates_edits_rotates_and_deletes_web_inboxes(
    agent, org, make_client, web, new_page, browser
):
    from widget.models import WebInbox

    old = _rated_inbox(org, make_client, [5, 4, 4])
    page = new_page("alice", viewport={"width": 1280, "height": 800})
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Widget", exact=True).click()
    panel = page.locator("#tab-web-inboxes")
    expect(panel.locator(f'.wi-card[data-id="{old.pk}"] h3')).to_have_text("Old shop")
    # the statistics: 3 ratings, average 4.33, two 4s and one 5
    expect(page.locator("#wi-ratings-summary")).to_have_text("3 ratings, average 4.33 of 5")
    expect(page.locator('#wi-ratings-table tr[data-score="4"] td')).to_have_text("2")
    expect(page.locator('#wi-ratings-table tr[data-score="5"] td')).to_have_text("1")
    expect(page.locator('#wi-ratings-table tr[data-score="1"] td')).to_have_text("0")

    # given: a new inbox, filled in by keyboard-reachable labelled fields
    page.get_by_role("button", name="New website inbox").click()
    form = page.locator("#wi-form")
    expect(form.get_by_label("Name", exact=True)).to_be_focused()
    form.get_by_label("Name", exact=True).fill("Shop <b>")
    form.get_by_label("Allowed origins").fill("https://shop.example\nhttp://localhost:8000")
    form.get_by_label("Greeting").fill("Hi! How can we help?")
    form.get_by_label("Default language").select_option("ru")
    form.get_by_label("Time zone of the business hours").fill("Europe/Moscow")
    form.get_by_role("button", name="Add hours").click()
    form.get_by_label("Ask for the email").select_option("required")
    form.get_by_role("button", name="Create inbox").click()

    # then: saved as typed, and the secret shown once (and copied)
    secret_box = page.locator("#wi-secret-value")
    expect(secret_box).to_be_focused()
    inbox = WebInbox.objects.get(name="Shop <b>")
    assert inbox.organization_id == org.pk
    assert inbox.allowed_origins == ["http://localhost:8000", "https://shop.example"]
    assert inbox.language == "ru" and inbox.timezone == "Europe/Moscow"
    assert inbox.business_hours == [{"weekday": 0, "start": "09:00", "end": "18:00"}]
    assert inbox.prechat_email == "required" and inbox.prechat_name == "off"
    expect(secret_box).to_have_value(inbox.secret)
    page.locator(".wi-secret").get_by_role("button", name="Copy: Secret").click()
    expect(page.locator("#notice")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == inbox.secret
    snippet = page.locator(f"#wi-snippet-{inbox.pk}")
    expect(snippet).to_have_value(
        f'<script src="{web.url}/static/widget/widget.js" data-inbox="{inbox.token}" async>'
        "</script>"
    )
    page.locator(".wi-secret").get_by_role("button", name="Done").click()
    expect(page.locator("#wi-secret-value")).to_have_count(0)
    screenshot(page, "web-inboxes.png")

    # when: an origin that is not one (a path, another scheme)
    page.get_by_role("button", name="Edit Shop <b>").click()
    expect(form.get_by_label("Allowed origins")).to_have_value(
        "http://localhost:8000\nhttps://shop.example"
    )
    form.get_by_label("Allowed origins").fill("ftp://shop.example/path")
    form.get_by_label("Greeting").fill("Changed")
    form.get_by_role("button", name="Save", exact=True).click()
    # then: the API's message beside the field, the field marked invalid, nothing saved
    expect(page.locator("#wi-origins-error")).to_contain_text("scheme://host[:port]")
    expect(form.get_by_label("Allowed origins")).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_label("Allowed origins")).to_be_focused()
    expect(page.locator("#wi-form-error")).to_have_text("Please correct the fields above.")
    inbox.refresh_from_db()
    assert inbox.greeting == "Hi! How can we help?"
    screenshot(page, "web-inbox-field-error.png")
    form.get_by_label("Allowed origins").fill("https://shop.example")
    form.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#wi-form")).to_have_count(0)
    inbox.refresh_from_db()
    assert inbox.greeting == "Changed" and inbox.allowed_origins == ["https://shop.example"]

    # a new secret, after a confirmation: shown once, the old one gone
    before = inbox.secret
    page.get_by_role("button", name="New secret for Shop <b>").click()
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.locator("#wi-secret-value")).to_be_focused()
    inbox.refresh_from_db()
    assert inbox.secret != before
    expect(page.locator("#wi-secret-value")).to_have_value(inbox.secret)

    # deleting the other inbox, after a confirmation
    page.get_by_role("button", name="Delete Old shop").click()
    page.get_by_role("button", name="Delete inbox").click()
    expect(panel.locator(f'.wi-card[data-id="{old.pk}"]')).to_have_count(0)
    assert wait_until(lambda: not WebInbox.objects.filter(pk=old.pk).exists(), timeout=10)

    # the same panel on a phone: nothing wider than the screen, the form included
    phone = new_page("alice", viewport=PHONE)
    phone.get_by_role("button", name="Widget", exact=True).click()
    expect(phone.locator(f'.wi-card[data-id="{inbox.pk}"]')).to_be_visible()
    assert phone.evaluate(NO_OVERFLOW) == {"doc": 0, "body": 0, "panel": 0}
    screenshot(phone, "phone-web-inboxes.png")
    # the fifth tab fits beside the other four, its label whole
    assert phone.evaluate(TABS_WHOLE), phone.locator(".tabs").inner_text()
    phone.get_by_role("button", name="Edit Shop <b>").click()
    phone.get_by_role("button", name="Add hours").click()
    expect(phone.locator(".wi-hours-row")).to_have_count(2)
    assert phone.evaluate(NO_OVERFLOW) == {"doc": 0, "body": 0, "panel": 0}
    screenshot(phone, "phone-web-inbox-form.png")
    assert page.errors == [] and phone.errors == []


def test_member_reads_web_inboxes_without_admin_buttons(
    agent, org, make_agent, make_client, web, new_page
):
    inbox = _rated_inbox(org, make_client, [3])
    make_agent("bob", org, role="agent")
    page = new_page("bob")
    page.get_by_role("button", name="Widget", exact=True).click()
    card = page.locator(f'.wi-card[data-id="{inbox.pk}"]')
    expect(card.locator(f"#wi-snippet-{inbox.pk}")).to_have_value(
        f'<script src="{web.url}/static/widget/widget.js" data-inbox="{inbox.token}" async>'
        "</script>"
    )
    expect(page.locator("#wi-ratings-summary")).to_have_text("1 rating, average 3 of 5")
    expect(page.locator("#tab-web-inboxes")).to_contain_text(
        "Organization admins add and change website inboxes."
    )
    expect(page.get_by_role("button", name="New website inbox")).to_have_count(0)
    expect(card.get_by_role("button", name="Edit Old shop")).to_have_count(0)
    expect(card.get_by_role("button", name="Delete Old shop")).to_have_count(0)
    assert page.errors == []
