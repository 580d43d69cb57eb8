"""A failed reply shows a Retry button that sends it again (own module: own worker)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.console.conftest import SAFE

pytestmark = pytest.mark.django_db(transaction=True)

# This module's worker gives up after one attempt; a shared one (with six) would race it.
SHARED_WORKER = False


def test_failed_message_shows_retry_and_retry_sends_it(
    agent, help_desk, settings, sender, new_page, start_worker
):
    settings.SENDER_MAX_ATTEMPTS = 1
    sender.control(down=True)
    start_worker(**SAFE)
    page = new_page("alice")
    page.locator(f'#inbox-list button[data-desk="{help_desk.uuid}"]').click()
    page.get_by_label("Reply").fill("will fail first")
    page.get_by_label("Reply").press("Enter")
    item = page.locator("#message-list li").filter(has_text="will fail first")
    expect(item).to_have_attribute("data-status", "failed", timeout=20_000)
    sender.control(down=False)
    item.get_by_role("button", name="Retry sending this message").click()
    expect(item).to_have_attribute("data-status", "sent", timeout=20_000)
    expect(item).to_have_count(1)
    expect(item.get_by_role("button")).to_have_count(0)
