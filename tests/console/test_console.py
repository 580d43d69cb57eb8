"""The agent console in a real browser against a real daphne, worker and sender."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.console.conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def desk_button(page, help_desk):
    return page.locator(f'#inbox-list button[data-desk="{help_desk.uuid}"]')


def message_item(page, text):
    return page.locator("#message-list li").filter(has_text=text)


def test_two_agents_one_replies_the_other_sees_it_live(
    agent, make_agent, help_desk, worker, new_page
):
    make_agent("bob", agent.organization)
    alice, bob = new_page("alice"), new_page("bob")
    for page in (alice, bob):
        expect(desk_button(page, help_desk)).to_contain_text(help_desk.client.name)
        desk_button(page, help_desk).click()
        expect(page.locator("#conv-title")).to_have_text(help_desk.client.name)
        expect(page.locator("#history-status")).to_have_text("No messages yet.")

    alice.get_by_label("Reply").fill("Hello from Alice")
    alice.get_by_role("button", name="Send").click()

    mine = message_item(alice, "Hello from Alice")
    expect(mine).to_have_count(1)
    # sending -> sent without a reload, once the worker handed it to the sender
    expect(mine).to_have_attribute("data-status", "sent", timeout=20_000)
    theirs = message_item(bob, "Hello from Alice")
    expect(theirs).to_have_count(1)
    expect(theirs).to_have_attribute("data-status", "sent", timeout=20_000)
    expect(desk_button(bob, help_desk)).to_contain_text("Hello from Alice")
    expect(alice.get_by_label("Reply")).to_have_value("")
    screenshot(alice, "conversation.png")
    assert alice.errors == [] and bob.errors == []
