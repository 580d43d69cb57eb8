"""The console for a support team (issue 13) in a real browser: status, assignment and
views with counts, private notes, canned replies, the customer context, search, alerts
and deep links, as agents use them; screenshots at 1280x800 and 390x844."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import wait_until
from tests.console.conftest import cut_off, screenshot

pytestmark = pytest.mark.django_db(transaction=True)

# The module's worker (the default) runs what the tests enqueue (deliveries of replies):
# without one, each test's teardown waits its full 15 s for the queues to drain.
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
    from core.models import Team

    make_agent("bob", org, role="agent")
    billing = Team.objects.create(organization=org, slug="billing", name="Billing")
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
    # ... and to the Billing team: the team filter finds it, with its count
    alice.locator("#conv-team").select_option(label="Billing")
    expect(alice.locator("#filter-team")).to_contain_text("Billing (1)")
    alice.locator("#filter-team").select_option(str(billing.pk))
    expect(alice.locator("#inbox-list button[data-desk]")).to_have_count(1)
    expect(row(alice, nina)).to_be_visible()
    alice.locator("#filter-team").select_option("")
    assert HelpDesk.objects.get(pk=nina.pk).team == billing

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


# The OS notification is outside the product: the page's calls are recorded instead.
FAKE_NOTIFICATION = """
window.__notifications = [];
window.Notification = class {
    static permission = "granted";
    static requestPermission() { return Promise.resolve("granted"); }
    constructor(title, options) { window.__notifications.push([title, options.body]); }
    close() {}
};
"""


def test_notes_canned_replies_context_and_a_mention_alert(
    agent, make_agent, org, make_client, web, new_page
):
    from chat.models import CannedReply, Client, Message
    from chat.services import help_desk_open
    from core.models import AgentPreference
    from tests.chat.test_context import _incident, _mailing

    make_agent("bob", org, role="agent")
    olga, _ = help_desk_open(client=make_client(org, name="Olga Older"))
    inbound(web, agent, olga.client.phone, "where is my refund?")
    # what the sidebar tells about Olga: a mailing she received, an incident that warned her
    _incident(org, _mailing(org, olga.client, "Spring sale"))
    alice = new_page("alice", viewport=DESKTOP)
    bob = new_page(viewport=DESKTOP)
    bob.add_init_script(FAKE_NOTIFICATION)
    from tests.console.conftest import login

    login(bob, "bob")

    # bob opts in to desktop notifications and sound: saved for him on the server
    bob.get_by_text("Alerts").click()
    bob.get_by_label("Desktop notifications").check()
    bob.get_by_label("Sound").check()
    wait_until(
        lambda: AgentPreference.objects.filter(
            user__username="bob", notify_desktop=True, notify_sound=True
        ).exists(),
        timeout=10,
    )
    assert cut_off(bob.locator(".prefs-box"), "input, select, p") == []
    screenshot(bob, "alerts.png")
    bob.get_by_text("Alerts").click()
    # a new conversation: bob is told (desktop and sound), alice (no alerts chosen) is not
    inbound(web, agent, "79990000001", "first contact")
    wait_until(lambda: bob.evaluate("consoleDebug.alerts()"), timeout=10)
    assert [
        (a["kind"], a["body"], a["desktop"], a["sound"])
        for a in bob.evaluate("consoleDebug.alerts()")
    ] == [("conversation", "79990000001", True, True)]
    expect(alice.locator("#inbox-list")).to_contain_text("first contact")
    assert alice.evaluate("consoleDebug.alerts()") == []

    # alice (an admin) adds a canned reply in the console
    row(alice, olga).click()
    alice.get_by_role("button", name="Canned replies…").click()
    dialog = alice.locator("#canned-dialog")
    dialog.get_by_label("Shortcut").fill("refund")
    dialog.get_by_label("Title").fill("Refund under way")
    dialog.get_by_label("Message").fill("Hello {{ name }}, your refund is on its way.")
    dialog.get_by_role("button", name="Add canned reply").click()
    expect(dialog.locator('#canned-manage-list li[data-shortcut="refund"]')).to_be_visible()
    dialog.get_by_label("Shortcut").fill("bad shortcut!")
    dialog.get_by_label("Message").fill("x")
    dialog.get_by_role("button", name="Add canned reply").click()
    expect(dialog.locator("#canned-shortcut-error")).not_to_be_empty()
    dialog.get_by_role("button", name="Close").click()
    assert CannedReply.objects.filter(organization=org).count() == 1

    # ... and uses it: "/ref", arrows and Enter insert it, filled for this client
    row(bob, olga).click()
    reply = alice.get_by_label("Reply")
    reply.press_sequentially("/ref")
    picker = alice.locator("#canned-list")
    expect(picker.get_by_role("option")).to_have_count(1)
    expect(picker.get_by_role("option").first).to_have_attribute("aria-selected", "true")
    screenshot(alice, "canned-picker.png")
    reply.press("Enter")
    expect(reply).to_have_value("Hello Olga Older, your refund is on its way.")
    expect(picker).to_be_hidden()
    reply.press("Enter")
    sent = "Hello Olga Older, your refund is on its way."
    mine = alice.locator("#message-list li.msg-out").filter(has_text=sent)
    expect(mine.locator(".msg-by")).to_have_text("You")
    # replying to an unassigned conversation took it: hers, on both pages
    expect(row(alice, olga).locator(".desk-assignee")).to_have_text("you")
    expect(row(bob, olga).locator(".desk-assignee")).to_have_text("alice")
    expect(alice.get_by_label("Assignee")).to_have_value(str(agent.user.pk))
    # the other agent sees who answered, on the bubble itself
    expect(
        bob.locator("#message-list li.msg-out").filter(has_text=sent).locator(".msg-by")
    ).to_have_text("alice")

    # a private note mentioning bob: agents see it in its own look, the client never does
    alice.get_by_role("button", name="Note", exact=True).click()
    alice.get_by_label("Private note").fill("@bob can you check the refund?")
    alice.get_by_role("button", name="Add note").click()
    for page in (alice, bob):
        note = page.locator("#message-list li.note").filter(has_text="can you check the refund")
        expect(note).to_be_visible()
        expect(note.locator(".msg-by")).to_contain_text("only agents see this")
    wait_until(lambda: any(a["kind"] == "mention" for a in bob.evaluate("consoleDebug.alerts()")))
    mention = next(a for a in bob.evaluate("consoleDebug.alerts()") if a["kind"] == "mention")
    assert mention["desktop"] and mention["sound"], mention
    assert bob.evaluate("window.__notifications")[-1] == [
        "alice mentioned you",
        "@bob can you check the refund?",
    ]
    history = alice.evaluate(
        "uuid => fetch(`/api/help-desks/${uuid}/history/`).then(r => r.json())", str(olga.uuid)
    )
    assert "check the refund" not in str(history)
    assert not Message.objects.filter(message__contains="check the refund").exists()
    screenshot(alice, "notes.png")

    # bob (an agent) reads canned replies but cannot change them
    bob.get_by_role("button", name="Canned replies…").click()
    expect(bob.locator("#canned-readonly")).to_be_visible()
    expect(bob.locator("#canned-form")).to_be_hidden()
    bob.get_by_role("button", name="Close").click()

    # the customer context: details edited beside the conversation
    context = alice.locator("#context")
    expect(context.get_by_label("Name")).to_have_value("Olga Older")
    context.get_by_label("Name").fill("Olga O. <b>Older</b>")
    context.get_by_label("Tag").fill("vip")
    context.get_by_label("No promotional SMS").check()
    context.get_by_role("button", name="Save details").click()
    expect(alice.locator("#conv-title")).to_have_text("Olga O. <b>Older</b>")
    expect(alice.locator("#context-title")).to_have_text("Olga O. <b>Older</b>")
    expect(row(bob, olga).locator(".desk-name")).to_have_text("Olga O. <b>Older</b>")
    client = Client.objects.get(pk=olga.client.pk)
    assert (client.name, client.tag, client.promo_opt_out) == ("Olga O. <b>Older</b>", "vip", True)
    context.get_by_label("Email", exact=True).fill("not an email")
    context.get_by_role("button", name="Save details").click()
    expect(context.locator("#ctx-email-error")).not_to_be_empty()
    screenshot(alice, "context.png")
    # below the details: what she received and which open incident warned her
    received = context.locator(".ctx-section").filter(has_text="Mailings received")
    expect(received.locator("li")).to_have_text([re.compile(r"^Spring sale · ")])
    warned = context.locator(".ctx-section").filter(has_text="Open incidents")
    expect(warned.locator("li")).to_have_text([re.compile(r"^Database down · open")])
    warned.scroll_into_view_if_needed()
    screenshot(alice, "context-history.png")
    assert alice.errors == [] and bob.errors == []


NO_OVERFLOW = """() => {
    const doc = document.documentElement;
    const panel = document.querySelector("main > .tab:not([hidden])");
    return {doc: doc.scrollWidth - doc.clientWidth,
            body: document.body.scrollWidth - document.body.clientWidth,
            panel: panel.scrollWidth - panel.clientWidth};
}"""


def test_phone_deep_link_through_login_one_line_top_bar_and_forms_that_fit(
    agent, org, make_client, web, new_page
):
    from chat.services import help_desk_open

    olga, _ = help_desk_open(client=make_client(org, name="Olga Older"))
    long_name = "Maximiliana Konstantinopolskaya-Wolfeschlegelsteinhausen " * 2
    make_client(org, name=long_name.strip(), tag="vip")
    inbound(web, agent, olga.client.phone, "hello from the phone test")
    page = new_page(viewport=PHONE)
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)

    # a deep link opened while logged out lands on that conversation after the login
    page.goto(f"/#{org.slug}/{olga.uuid}")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("pw-alice")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#conv-title")).to_have_text("Olga Older")
    expect(page.locator("#message-list")).to_contain_text("hello from the phone test")
    assert page.evaluate("location.hash") == f"#{org.slug}/{olga.uuid}"

    # the top bar is one line and all four tabs show whole
    bar = page.locator(".topbar").bounding_box()
    assert bar["height"] < 56, bar
    for tab in page.locator(".tab-button").all():
        box = tab.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    assert page.evaluate(NO_OVERFLOW) == {"doc": 0, "body": 0, "panel": 0}
    screenshot(page, "phone-deeplink-conversation.png")
    page.get_by_role("button", name="Details").click()
    expect(page.locator("#context").get_by_label("Name")).to_have_value("Olga Older")
    assert page.evaluate(NO_OVERFLOW) == {"doc": 0, "body": 0, "panel": 0}
    screenshot(page, "phone-details.png")
    page.get_by_role("button", name="← Conversation").click()
    page.get_by_role("button", name="← Inbox").click()
    expect(page.locator("#inbox-views")).to_be_visible()
    # the inbox takes the whole width (no empty conversation column beside it)
    inbox = page.locator(".inbox").bounding_box()
    assert inbox["width"] >= PHONE["width"] - 2, inbox
    screenshot(page, "phone-inbox.png")

    # one heading per section (the tab names it; no "Inbox"/"Mailings" twice)
    expect(page.get_by_role("heading", name="Inbox")).to_have_count(0)
    page.get_by_role("button", name="Mailings").click()
    expect(page.get_by_role("heading", name="Mailings", exact=True)).to_have_count(1)
    # the mailing form fits 390 px, even with a long client in its preview picker
    page.get_by_label("Client tags").fill("vip")
    page.get_by_label("Client tags").press("Tab")
    expect(page.get_by_label("Client", exact=True)).to_contain_text("Maximiliana")
    assert page.evaluate(NO_OVERFLOW) == {"doc": 0, "body": 0, "panel": 0}
    screenshot(page, "phone-mailing-form.png")

    # the favicon is served, and no page asks for a missing one
    href = page.locator("link[rel=icon]").get_attribute("href")
    assert page.request.get(href).status == 200
    assert missing == []

    # a web widget visitor's conversation: the details say where and when they are
    from chat.models import Client
    from widget.inboxes import web_inbox_create
    from widget.models import Visitor

    shop = web_inbox_create(organization=org, name="Shop", allowed_origins=["https://shop.example"])
    web_client = Client.objects.create(
        organization=org, name="Website visitor", channel=Client.Channel.WEB
    )
    Visitor.objects.create(
        inbox=shop,
        client=web_client,
        page_url="https://shop.example/cart",
        user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Firefox/128.0",
        utc_offset=180,
    )
    web_desk, _ = help_desk_open(client=web_client)
    page.goto(f"/#{org.slug}/{web_desk.uuid}")
    expect(page.locator("#conv-title")).to_have_text("Website visitor")
    page.get_by_role("button", name="Details").click()
    expect(page.locator(".visitor-page")).to_have_text("https://shop.example/cart")
    expect(page.locator(".visitor-browser")).to_have_text("Firefox on Windows")
    expect(page.locator(".visitor-time")).to_contain_text("(UTC+3)")
    screenshot(page, "phone-visitor-details.png")
    assert page.errors == []


def test_each_agents_own_unread_count(agent, make_agent, org, make_client, web, new_page):
    from chat.services import help_desk_open

    make_agent("bob", org, role="agent")
    olga, _ = help_desk_open(client=make_client(org, name="Olga Older", tag="vip"))
    nina, _ = help_desk_open(client=make_client(org, name="Nina <i>Newer</i>"))
    inbound(web, agent, nina.client.phone, "the <b>invoice</b> total is wrong")
    first, second = new_page("alice", viewport=DESKTOP), new_page("alice")
    bob = new_page("bob", viewport=DESKTOP)

    # unread is each agent's own: alice reading in one tab clears her other tab, not bob's
    inbound(web, agent, olga.client.phone, "are you there?")
    for page in (first, second, bob):
        expect(row(page, olga).locator(".unread-count")).to_have_attribute("data-count", "1")
    row(first, olga).click()
    expect(row(first, olga).locator(".unread-count")).to_have_count(0)
    expect(row(second, olga).locator(".unread-count")).to_have_count(0)
    expect(second).to_have_title(re.compile(r"^\(1\) "))  # nina's only
    expect(bob).to_have_title(re.compile(r"^\(2\) "))  # olga's and nina's
    expect(row(bob, olga).locator(".unread-count")).to_have_attribute("data-count", "1")
    screenshot(bob, "unread.png")

    assert first.errors == [] and second.errors == [] and bob.errors == []


def test_search_finds_clients_and_messages_and_opens_them(agent, org, make_client, web, new_page):
    from chat.services import help_desk_open

    olga, _ = help_desk_open(client=make_client(org, name="Olga Older", tag="vip"))
    nina, _ = help_desk_open(client=make_client(org, name="Nina <i>Newer</i>"))
    inbound(web, agent, nina.client.phone, "the <b>invoice</b> total is wrong")
    first = new_page("alice", viewport=DESKTOP)
    expect(row(first, olga)).to_be_visible()

    # search: message text, marked where it matched; markup stays text
    first.get_by_label("Search clients and messages").fill("invoice")
    hits = first.locator("#search-messages li")
    expect(hits).to_have_count(1)
    expect(hits.locator("mark")).to_have_text(["invoice"])
    expect(hits).to_contain_text("<b>")
    assert first.locator("#search-results b, #search-results i").count() == 0
    expect(first.locator("#inbox-list")).to_be_hidden()
    screenshot(first, "search.png")
    hits.first.click()
    expect(first.locator("#conv-title")).to_have_text("Nina <i>Newer</i>")
    # clients by tag; Escape brings the inbox back
    box = first.get_by_label("Search clients and messages")
    box.fill("vip")
    expect(first.locator("#search-clients li")).to_have_count(1)
    expect(first.locator("#search-clients li")).to_contain_text("Olga Older")
    box.press("Escape")
    expect(first.locator("#inbox-list")).to_be_visible()
    expect(first.locator("#search-results")).to_be_hidden()
    assert first.errors == []
