"""The mailings panel in a real browser (own module: its own worker with small batches,
so a mailing takes a few seconds and its progress can be seen moving)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_until
from tests.console.conftest import SAFE, screenshot

pytestmark = pytest.mark.django_db(transaction=True)

# The worker of this module sends in batches of 2 with a progress event after each one.
SHARED_WORKER = False
SLOW_WORKER = {"MAILING_BATCH_SIZE": "2", "MAILING_LANES": "1", "MAILING_PROGRESS_INTERVAL": "0.1"}

# Records every value each mailing card's progress bar shows (cards are re-rendered on
# each event, so this watches the whole list): {mailing id: [values in order]}.
RECORD_PROGRESS = """() => {
    window.__progress = {};
    const record = () => document.querySelectorAll("#mailing-live-list li").forEach(li => {
        const bar = li.querySelector("progress");
        if (!bar) return;
        const values = (window.__progress[li.dataset.id] ||= []);
        const value = Number(bar.getAttribute("value"));
        if (values[values.length - 1] !== value) values.push(value);
    });
    new MutationObserver(record).observe(document.getElementById("mailings-body"),
                                         {childList: true, subtree: true, attributes: true});
}"""


def test_mailing_form_previews_creates_and_shows_live_progress_and_statistics(
    agent, org, make_client, web, sender, start_worker, new_page
):
    from mailing.models import Mailing, Template

    bold = make_client(org, tag="promo", name="<b>Bold</b> Bob")
    for _ in range(11):
        make_client(org, tag="promo")
    make_client(org, tag="other", name="Not in the audience")
    Template.objects.create(
        organization=org,
        title="Offer",
        code="offer",
        body="Hi {{ name }}, {{ offer }} today",
        variables=["offer"],
    )
    page = new_page("alice")
    page.get_by_role("button", name="Mailings").click()
    expect(page.locator("#mailings-live")).to_contain_text("No mailings yet.")

    page.get_by_label("Name").fill("Autumn <sale>")
    page.get_by_label("Template").select_option(label="Offer (offer)")
    page.get_by_label("Value of {{ offer }}").fill("20% off")
    tags = page.get_by_label("Client tags")
    tags.fill("promo")
    tags.press("Tab")  # change: the preview clients follow the filter
    preview_client = page.get_by_label("Client", exact=True)
    expect(preview_client.locator("option")).to_have_count(13)  # a prompt + 12 in the audience
    preview_client.select_option(value=str(bold.uuid))
    expect(page.locator("#mailing-preview")).to_have_text("Hi <b>Bold</b> Bob, 20% off today")
    screenshot(page, "mailing-form.png")

    sender.control(latency_ms=400)  # 6 batches of 2: about 2.5 s of sending
    start_worker(**SAFE, **SLOW_WORKER)
    page.evaluate(RECORD_PROGRESS)
    page.get_by_role("button", name="Create mailing").click()
    mailing = wait_until(lambda: Mailing.objects.first(), timeout=10)
    card = page.locator(f'#mailing-live-list li[data-id="{mailing.pk}"]')
    expect(card.locator("h3")).to_contain_text("Autumn <sale>")
    # While sending, the bar shows progress between nothing and everything.
    expect(card).to_have_attribute("data-status", "running", timeout=30_000)
    expect(card).to_have_attribute("data-status", "finished", timeout=30_000)
    shown = page.evaluate("window.__progress")[str(mailing.pk)]
    assert any(0 < value < 12 for value in shown), shown
    assert shown == sorted(shown) and shown[-1] == 12, shown  # never backwards
    expect(card).to_have_attribute("data-total", "12")
    expect(card).to_have_attribute("data-done", "12")
    expect(card.locator("progress")).to_have_attribute("value", "12")
    expect(card.locator('td[data-status="sent"]')).to_have_text("12")
    expect(card.locator('svg polyline[data-status="sent"]')).to_have_count(1)

    card.get_by_role("button", name=re.compile("^Statistics of")).click()
    expect(card).to_contain_text("attempt(s)")
    expect(card.get_by_role("img")).to_have_attribute(
        "aria-label", re.compile("by status over time")
    )

    # The chart (rebuilt from the messages): `sent` rises from 0 (the bottom, y=208) at
    # the left edge (x=48) to all 12 (the top, y=12) at the right edge (x=530).
    def points(status):
        line = card.locator(f'svg polyline[data-status="{status}"]').get_attribute("points")
        return [tuple(float(v) for v in point.split(",")) for point in line.split()]

    sent, pending = points("sent"), points("pending")
    assert sent[0] == (48.0, 208.0) and sent[-1] == (530.0, 12.0), sent
    assert [y for _, y in sent] == sorted((y for _, y in sent), reverse=True), sent  # only up
    assert len({y for _, y in sent}) > 2, sent  # steps in between, not one jump
    assert pending[0] == (48.0, 12.0) and pending[-1] == (530.0, 208.0), pending
    screenshot(page, "mailing.png")
    assert page.errors == []


def test_mailing_form_shows_field_errors(agent, web, new_page):
    page = new_page("alice")
    page.get_by_role("button", name="Mailings").click()
    page.get_by_label("Text").fill("Hello")
    page.get_by_label("Start").fill("2030-01-02T10:00")
    page.get_by_label("End (nothing is sent after it)").fill("2030-01-01T10:00")
    page.get_by_role("button", name="Create mailing").click()
    expect(page.locator("#mailing-end-error")).to_contain_text("after the start")
    expect(page.locator("#mailing-form-error")).to_have_text("Please correct the fields above.")
