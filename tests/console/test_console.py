"""The agent console in a real browser against a real daphne, worker and sender."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import wait_until
from tests.console.conftest import panel_activity, screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def desk_button(page, help_desk):
    return page.locator(f'#inbox-list button[data-desk="{help_desk.uuid}"]')


def message_item(page, text):
    return page.locator("#message-list li").filter(has_text=text)


# Records every status each message item shows (the <li> is replaced on each update), so
# a test can tell `sending` was really shown before `sent` rather than skipped over.
RECORD_STATUSES = """() => {
    window.__statuses = [];
    const list = document.getElementById("message-list");
    const record = () => list.querySelectorAll("li").forEach(li => {
        const entry = [li.querySelector(".msg-text")?.textContent, li.dataset.status];
        const last = window.__statuses.filter(e => e[0] === entry[0]).pop();
        if (!last || last[1] !== entry[1]) window.__statuses.push(entry);
    });
    new MutationObserver(record).observe(list, {childList: true, subtree: true, attributes: true});
}"""


def statuses_of(page, text):
    return [status for shown, status in page.evaluate("window.__statuses") if shown == text]


def test_two_agents_one_replies_the_other_sees_it_live(
    agent, make_agent, help_desk, worker, sender, new_page
):
    make_agent("bob", agent.organization)
    alice, bob = new_page("alice"), new_page("bob")
    for page in (alice, bob):
        expect(desk_button(page, help_desk)).to_contain_text(help_desk.client.name)
        desk_button(page, help_desk).click()
        expect(page.locator("#conv-title")).to_have_text(help_desk.client.name)
        expect(page.locator("#history-status")).to_have_text("No messages yet.")
        page.evaluate(RECORD_STATUSES)

    sender.control(latency_ms=1500)  # the sender takes its time: `sending` lasts 1.5 s
    alice.get_by_label("Reply").fill("Hello from Alice")
    alice.get_by_role("button", name="Send").click()

    mine = message_item(alice, "Hello from Alice")
    expect(mine).to_have_count(1)
    # sending (shown while the sender works) -> sent without a reload
    expect(mine).to_have_attribute("data-status", "sending")
    expect(mine.locator(".msg-status")).to_have_text("Sending…")
    expect(mine).to_have_attribute("data-status", "sent", timeout=20_000)
    theirs = message_item(bob, "Hello from Alice")
    expect(theirs).to_have_count(1)
    expect(theirs).to_have_attribute("data-status", "sent", timeout=20_000)
    for page in (alice, bob):  # each page showed `sending` first, then `sent`, nothing else
        assert statuses_of(page, "Hello from Alice") == ["sending", "sent"]
    expect(desk_button(bob, help_desk)).to_contain_text("Hello from Alice")
    expect(alice.get_by_label("Reply")).to_have_value("")
    expect(bob.locator("#history-status")).to_have_text("Beginning of the conversation.")
    screenshot(alice, "conversation.png")
    assert alice.errors == [] and bob.errors == []


def test_double_enter_sends_one_message(agent, help_desk, worker, sender, new_page):
    from chat.models import Message

    page = new_page("alice")
    desk_button(page, help_desk).click()
    expect(page.locator("#history-status")).to_have_text("No messages yet.")
    # Hold every send until both Enters were handled (press() returns once the key's
    # handlers ran), so the second surely lands while the first is in flight.
    page.evaluate(
        """() => {
            window.__sends = 0;
            const gate = new Promise(resolve => { window.__release = resolve; });
            const fetch = window.fetch;
            window.fetch = (url, options) => {
                if (String(url).includes("/send-message/")) {
                    window.__sends += 1;
                    return gate.then(() => fetch(url, options));
                }
                return fetch(url, options);
            };
        }"""
    )
    reply = page.get_by_label("Reply")
    reply.fill("only once")
    reply.press("Enter")
    reply.press("Enter")
    page.evaluate("window.__release()")
    expect(message_item(page, "only once")).to_have_count(1)
    expect(reply).to_have_value("")  # the send settled
    expect(page.locator("#reply-send")).to_be_enabled()
    expect(message_item(page, "only once")).to_have_attribute("data-status", "sent", timeout=20_000)
    assert page.evaluate("window.__sends") == 1
    assert Message.objects.filter(help_desk=help_desk, message="only once").count() == 1
    assert page.errors == []


def inbound(web, agent, phone, text):
    response = httpx.post(
        f"{web.url}/api/inbound-message/",
        json={"organization": agent.organization.slug, "phone": phone, "message": text},
        headers={"Authorization": f"Bearer {agent.key}"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def send(web, agent, help_desk, text):
    response = httpx.post(
        f"{web.url}/api/send-message/",
        data={"help_desk": str(help_desk.uuid), "message": text},
        headers={"Authorization": f"Bearer {agent.key}"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def inbox_order(page):
    return page.locator("#inbox-list button[data-desk]").evaluate_all(
        "buttons => buttons.map(b => b.dataset.desk)"
    )


XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> & "quotes"'


def test_inbound_message_reorders_inbox_counts_unread_and_shows_markup_as_text(
    agent, org, make_client, web, new_page
):
    from chat.services import help_desk_open

    older, _ = help_desk_open(client=make_client(org, name="Olga Older"))
    newer, _ = help_desk_open(client=make_client(org, name="Nina Newer"))
    page = new_page("alice")
    expect(page.locator("#inbox-list button[data-desk]")).to_have_count(2)
    assert inbox_order(page) == [str(newer.uuid), str(older.uuid)]

    inbound(web, agent, older.client.phone, XSS)
    expect(desk_button(page, older).locator(".unread-count")).to_have_attribute("data-count", "1")
    assert inbox_order(page) == [str(older.uuid), str(newer.uuid)]
    expect(desk_button(page, older).locator(".desk-last")).to_have_text(XSS)

    inbound(web, agent, older.client.phone, "second question")
    expect(desk_button(page, older).locator(".unread-count")).to_have_attribute("data-count", "2")
    expect(desk_button(page, newer).locator(".unread-count")).to_have_count(0)
    expect(page).to_have_title("(2) Agent console")
    screenshot(page, "inbox.png")

    # Keyboard: the inbox is a list of buttons; Enter opens one and marks it read.
    desk_button(page, older).focus()
    page.keyboard.press("Enter")
    expect(page.locator("#conv-title")).to_have_text("Olga Older")
    expect(message_item(page, "second question")).to_have_count(1)
    shown = page.locator("#message-list li .msg-text").first
    expect(shown).to_have_text(XSS)
    expect(desk_button(page, older).locator(".unread-count")).to_have_count(0)
    assert page.locator("#message-list script, #message-list img").count() == 0
    assert page.evaluate("window.__xss") is None

    # A message arriving in the open conversation is read at once.
    inbound(web, agent, older.client.phone, "third, while you look")
    expect(message_item(page, "third, while you look")).to_have_count(1)
    expect(desk_button(page, older).locator(".unread-count")).to_have_count(0)
    # ... on the server too, for this agent (unread counts are per agent since issue 13)
    with agent.http(web.url) as http:
        wait_until(lambda: http.get(f"/api/help-desks/{older.uuid}/").json()["unread_count"] == 0)
    screenshot(page, "conversation-inbound.png")
    assert page.errors == []


def test_offline_and_back_catches_up_without_duplicates(
    agent, make_agent, help_desk, web, new_page
):
    bob = make_agent("bob", agent.organization)
    page = new_page("alice")
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    watcher = new_page("alice")  # stays online: proves the missed events were broadcast
    for shown in (page, watcher):
        desk_button(shown, help_desk).click()
    send(web, bob, help_desk, "before the drop")
    expect(message_item(page, "before the drop")).to_have_count(1)
    expect(desk_button(page, help_desk)).to_contain_text("before the drop")

    page.context.set_offline(True)
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "offline")
    seen = page.evaluate("consoleDebug.lastEventId()")  # what the page resumes from
    assert seen > 0
    send(web, bob, help_desk, "while away 1")
    inbound(web, agent, help_desk.client.phone, "client while away")
    send(web, bob, help_desk, "while away 2")
    # Really offline: the online page got all three (and the last one's update_helpdesk),
    # the offline page none, and it applied nothing past the id it will resume from.
    for text in ("while away 1", "client while away", "while away 2"):
        expect(message_item(watcher, text)).to_have_count(1)
    expect(desk_button(watcher, help_desk)).to_contain_text("while away 2")
    assert watcher.evaluate("consoleDebug.lastEventId()") > seen
    for text in ("while away 1", "client while away", "while away 2"):
        assert message_item(page, text).count() == 0
    assert page.evaluate("consoleDebug.lastEventId()") == seen
    assert not page.evaluate("consoleDebug.connected()")

    page.context.set_offline(False)
    expect(page.locator("#notice")).to_contain_text("Reconnected")
    for text in ("while away 1", "client while away", "while away 2"):
        expect(message_item(page, text)).to_have_count(1)
    expect(message_item(page, "before the drop")).to_have_count(1)
    assert re.search(rf"last_event_id={seen}\b", sockets[-1]), sockets
    # Messages in order, each once; every event applied once.
    texts = page.locator("#message-list .msg-text").all_text_contents()
    assert texts == ["before the drop", "while away 1", "client while away", "while away 2"]
    applied = page.evaluate("consoleDebug.appliedEventIds()")
    assert len(applied) == len(set(applied)) and applied == sorted(applied)

    # The socket cut from the page (a proxy dropping it) recovers the same way.
    page.evaluate("consoleDebug.dropSocket()")
    send(web, bob, help_desk, "after the cut")
    expect(message_item(page, "after the cut")).to_have_count(1)
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "live")
    assert page.errors == []


@pytest.mark.parametrize("web_env", [{"EVENT_RETENTION": "2"}])
def test_resync_required_reloads_what_is_shown(agent, make_agent, help_desk, web, new_page):
    bob = make_agent("bob", agent.organization)
    page = new_page("alice")
    desk_button(page, help_desk).click()
    expect(page.locator("#history-status")).to_have_text("No messages yet.")
    page.context.set_offline(True)
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "offline")
    for n in range(4):  # more events than the server keeps: the page must resync
        send(web, bob, help_desk, f"missed {n}")
    page.context.set_offline(False)
    expect(page.locator("#notice")).to_contain_text("reloaded")
    for n in range(4):
        expect(message_item(page, f"missed {n}")).to_have_count(1)
    expect(desk_button(page, help_desk)).to_contain_text("missed 3")
    send(web, bob, help_desk, "live again")
    expect(message_item(page, "live again")).to_have_count(1)
    assert page.locator("#message-list li").count() == 5


def test_agent_of_another_organization_sees_nothing(
    agent, help_desk, make_agent, make_org, make_client, web, worker, new_page
):
    from chat.services import help_desk_open

    eve = make_agent("eve", make_org("other"))
    own, _ = help_desk_open(client=make_client(eve.organization, name="Eve's client"))
    page = new_page("eve")
    expect(page.locator("#org-select option")).to_have_count(1)
    expect(page.locator("#org-select")).to_have_value("other")
    expect(page.locator("#inbox-list button[data-desk]")).to_have_count(1)
    alice = new_page("alice")  # acme's console: shows that acme's events did go out

    inbound(web, agent, help_desk.client.phone, "acme secret")
    acme = panel_activity(web, agent, make_client)  # assistance, incident, mailing events
    alice.get_by_role("button", name="Assistance").click()
    expect(alice.locator(f'#assistance-list li[data-id="{acme["assistance"]}"]')).to_have_count(1)
    expect(alice.locator("#incident-list li")).to_have_count(1, timeout=20_000)
    alice.get_by_role("button", name="Mailings").click()
    acme_mailing = alice.locator(f'#mailing-live-list li[data-id="{acme["mailing"]}"]')
    expect(acme_mailing).to_have_attribute("data-status", "finished", timeout=30_000)

    inbound(web, eve, own.client.phone, "for eve")  # arrives after the acme ones
    expect(desk_button(page, own)).to_contain_text("for eve")
    expect(desk_button(page, help_desk)).to_have_count(0)
    expect(page.get_by_text("acme secret")).to_have_count(0)
    for tab, body, empty in (
        ("Assistance", "#assistance-body", "No assistance requests."),
        ("Incidents", "#incidents-body", "No open incidents."),
        ("Mailings", "#mailings-live", "No mailings yet."),
    ):
        page.get_by_role("button", name=tab).click()
        expect(page.locator(body)).to_contain_text(empty)
    cards = "#assistance-list li, #incident-list li, #mailing-live-list li"
    assert page.locator(cards).count() == 0
    expect(page.locator("#assistance-badge")).to_be_hidden()
    expect(page.locator("#incidents-badge")).to_be_hidden()
    for text in ("acme needs a quote", "Login failing", "acme campaign"):
        expect(page.get_by_text(text)).to_have_count(0)
    page.get_by_role("button", name="Inbox").click()

    # Asking for the other organization's help desk by URL shows nothing either.
    page.goto(f"/#acme/{help_desk.uuid}")
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "live")
    expect(page.locator("#org-select")).to_have_value("other")
    expect(page.locator("#conv")).to_be_hidden()
    status = page.evaluate(
        "uuid => fetch(`/api/help-desks/${uuid}/history/`).then(r => r.status)",
        str(help_desk.uuid),
    )
    assert status == 404
    ws_code = page.evaluate(
        """() => new Promise(resolve => {
            const ws = new WebSocket(`ws://${location.host}/ws/chat/acme/`);
            ws.onclose = event => resolve(event.code);
        })"""
    )
    assert ws_code == 4403
    assert page.get_by_text("acme secret").count() == 0


def test_phone_width_shows_inbox_then_conversation_and_sends_a_file(
    agent, help_desk, web, new_page, tmp_path
):
    page = new_page("alice", viewport={"width": 390, "height": 844})
    expect(desk_button(page, help_desk)).to_be_visible()
    expect(page.locator("#conversation")).to_be_hidden()
    desk_button(page, help_desk).click()
    expect(page.locator("#conversation")).to_be_visible()
    expect(page.locator(".inbox")).to_be_hidden()
    note = tmp_path / "note.txt"
    note.write_text("attached text")
    page.get_by_label("Attach a file (optional)").set_input_files(str(note))
    page.get_by_label("Reply").fill("see attached")
    page.get_by_role("button", name="Send").click()
    item = message_item(page, "see attached")
    expect(item).to_have_count(1)
    link = item.locator("a")
    expect(link).to_contain_text("note")
    assert page.request.get(link.get_attribute("href")).text() == "attached text"
    screenshot(page, "phone-conversation.png")
    page.get_by_role("button", name="← Inbox").click()
    expect(page.locator(".inbox")).to_be_visible()
    expect(desk_button(page, help_desk)).to_be_focused()


def test_login_rejects_a_wrong_password_and_logout_ends_the_session(agent, web, new_page):
    page = new_page()
    page.goto("/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("didn't match")
    expect(page.locator("#conn-status")).to_have_count(0)

    page.get_by_label("Password").fill("pw-alice")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "live")
    expect(page.locator(".who")).to_have_text("alice")

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    status = page.evaluate("fetch('/api/organizations/').then(r => r.status)")
    assert status in (401, 403)


def test_scrolling_up_loads_older_messages_in_order_once(agent, help_desk, web, new_page):
    from datetime import timedelta

    from django.utils import timezone

    from chat.models import HelpDesk, Message

    start = timezone.now() - timedelta(hours=1)
    for n in range(70):
        message = Message.objects.create(
            help_desk=help_desk, message=f"old {n:02d}", type="received", status="delivered"
        )
        Message.objects.filter(pk=message.pk).update(created_at=start + timedelta(seconds=n))
    HelpDesk.objects.filter(pk=help_desk.pk).update(last_message=message)

    page = new_page("alice")
    desk_button(page, help_desk).click()
    texts = page.locator("#message-list .msg-text")
    expect(texts.last).to_have_text("old 69")
    first_load = texts.count()
    assert 30 <= first_load < 70  # a page (or two, to fill the box), not everything
    status = page.locator("#history-status")
    for _ in range(5):  # scroll to the top until the beginning shows
        if status.text_content() == "Beginning of the conversation.":
            break
        shown = texts.count()
        page.locator("#history").evaluate("box => { box.scrollTop = 0; }")
        wait_until(lambda n=shown: texts.count() > n, timeout=10)
        # what the agent was reading stays in place: older messages go above it
        assert page.locator("#history").evaluate("box => box.scrollTop") > 0
    expect(page.locator("#history-status")).to_have_text("Beginning of the conversation.")
    expect(texts).to_have_count(70)
    assert texts.all_text_contents() == [f"old {n:02d}" for n in range(70)]


def test_agent_in_two_organizations_picks_one_and_sees_only_its_events(
    agent, help_desk, make_org, make_client, web, new_page
):
    from chat.services import help_desk_open
    from core.services import membership_add

    beta = make_org("beta")
    membership_add(organization=beta, user=agent.user, role="agent")
    beta_desk, _ = help_desk_open(client=make_client(beta, name="Beta client"))
    page = new_page("alice")
    expect(page.locator("#org-select option")).to_have_count(2)
    expect(page.locator("#org-select")).to_be_enabled()
    expect(page.get_by_label("Organization")).to_have_value("acme")
    expect(desk_button(page, help_desk)).to_be_visible()

    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.get_by_label("Organization").select_option("beta")
    expect(desk_button(page, beta_desk)).to_be_visible()
    expect(desk_button(page, help_desk)).to_have_count(0)
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "live")
    assert sockets and sockets[-1].endswith("/ws/chat/beta/")  # a fresh stream, not a resume

    inbound(web, agent, help_desk.client.phone, "to acme")  # the other organization
    response = httpx.post(
        f"{web.url}/api/inbound-message/",
        json={"organization": "beta", "phone": beta_desk.client.phone, "message": "to beta"},
        headers={"Authorization": f"Bearer {agent.key}"},
    )
    assert response.status_code == 201
    expect(desk_button(page, beta_desk)).to_contain_text("to beta")
    expect(desk_button(page, help_desk)).to_have_count(0)

    page.reload()  # the choice is remembered
    expect(page.get_by_label("Organization")).to_have_value("beta")
    expect(desk_button(page, beta_desk)).to_contain_text("to beta")


def luminance(rgb):
    def channel(c):
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(int(v)) for v in re.findall(r"\d+(?:\.\d+)?", rgb)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a, b):
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


FOCUS_STYLE = """() => {
    const node = document.activeElement, style = getComputedStyle(node);
    return {id: node.id, desk: node.dataset.desk || null, visible: node.matches(":focus-visible"),
            style: style.outlineStyle, width: parseFloat(style.outlineWidth),
            color: style.outlineColor};
}"""


def tab_to(page, predicate, presses=40):
    for _ in range(presses):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUS_STYLE)
        if predicate(focused):
            return focused
    raise AssertionError(f"never focused with Tab; last: {focused}")


def test_keyboard_focus_is_clearly_visible_on_the_inbox_and_the_reply_box(
    agent, help_desk, web, new_page
):
    page = new_page("alice")
    expect(desk_button(page, help_desk)).to_be_visible()
    page.locator("body").focus()
    desk = tab_to(page, lambda f: f["desk"] == str(help_desk.uuid))
    assert desk["visible"] and desk["style"] != "none", desk
    assert desk["width"] >= 2, desk
    # WCAG 1.4.11: the ring against the white it is drawn on, at least 3:1
    assert contrast(desk["color"], "rgb(255, 255, 255)") >= 3, desk
    page.keyboard.press("Enter")  # opens the conversation; focus goes to the reply box
    expect(page.get_by_label("Reply")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    reply_box = tab_to(page, lambda f: f["id"] == "reply-text")
    assert reply_box["visible"] and reply_box["style"] != "none", reply_box
    assert reply_box["width"] >= 2
    assert contrast(reply_box["color"], "rgb(255, 255, 255)") >= 3, reply_box
    screenshot(page, "focus-reply.png")


def test_inbox_loads_when_the_websocket_cannot_connect_and_live_resumes_later(
    agent, make_agent, help_desk, web, new_page
):
    bob = make_agent("bob", agent.organization)
    send(web, bob, help_desk, "before the page")
    page = new_page()
    allow = {"ws": False}
    attempts = []

    def route_socket(ws):
        attempts.append(ws.url)
        if allow["ws"]:
            ws.connect_to_server()
        else:
            ws.close(code=1011, reason="blocked by the test")  # a proxy refusing sockets

    page.route_web_socket(re.compile(r"/ws/chat/"), route_socket)
    page.goto("/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("pw-alice")
    page.get_by_role("button", name="Log in").click()

    # No websocket, yet the inbox and a conversation load from the REST API.
    expect(desk_button(page, help_desk)).to_contain_text("before the page")
    expect(page.locator("#live-warning")).to_be_visible()
    expect(page.locator("#live-warning")).to_contain_text("Live updates unavailable, retrying")
    expect(page.locator("#conn-status")).not_to_have_attribute("data-state", "live")
    desk_button(page, help_desk).click()
    expect(message_item(page, "before the page")).to_have_count(1)
    wait_until(lambda: page.evaluate("1") and len(attempts) >= 2, timeout=20)  # it retries
    screenshot(page, "websocket-blocked.png")

    send(web, bob, help_desk, "while blocked")  # no socket: the page cannot know yet
    allow["ws"] = True
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "live", timeout=30_000)
    expect(page.locator("#live-warning")).to_be_hidden()
    # Connected: the data is loaded again after the hello (nothing in between is lost)...
    expect(message_item(page, "while blocked")).to_have_count(1)
    # ...and live events apply once, on top of it.
    send(web, bob, help_desk, "live now")
    expect(message_item(page, "live now")).to_have_count(1)
    expect(desk_button(page, help_desk)).to_contain_text("live now")
    texts = page.locator("#message-list .msg-text").all_text_contents()
    assert texts == ["before the page", "while blocked", "live now"]
    applied = page.evaluate("consoleDebug.appliedEventIds()")
    assert len(applied) == len(set(applied)) and applied == sorted(applied)
    assert page.errors == []


def test_screen_reader_names_authors_announces_the_inbox_and_ignores_a_bad_hash(
    agent, make_agent, org, make_client, web, worker, new_page
):
    from chat.services import help_desk_open

    bob = make_agent("bob", org)
    olga, _ = help_desk_open(client=make_client(org, name="Olga Older"))
    nina, _ = help_desk_open(client=make_client(org, name="Nina Newer"))
    send(web, bob, olga, "from bob")
    inbound(web, agent, olga.client.phone, "from olga")

    page = new_page("alice")
    # A malformed hash (bad percent-encoding) is ignored: no error, the inbox shows.
    page.goto("/#%E0%A4%A/x")
    expect(desk_button(page, olga)).to_contain_text("from olga")
    expect(page.locator("#org-select")).to_have_value("acme")
    assert page.errors == []

    desk_button(page, olga).click()
    page.get_by_label("Reply").fill("from alice")
    page.get_by_label("Reply").press("Enter")
    expect(message_item(page, "from alice")).to_have_count(1)
    items = page.locator("#message-list li").evaluate_all(
        """items => items.map(li => ({label: li.getAttribute("aria-label"),
                                      author: li.querySelector(".msg-author").textContent,
                                      text: li.querySelector(".msg-text").textContent}))"""
    )
    # No aria-label replacing the message; the author is read first, then the text.
    assert [item["label"] for item in items] == [None, None, None]
    authors = {item["text"]: item["author"] for item in items}
    assert authors["from olga"] == "Olga Older: "
    assert authors["from alice"] == "You: "
    # The message API does not say which agent sent it: never "You" for bob's.
    assert authors["from bob"] in ("bob: ", "Agent: "), authors
    log = page.locator("#message-list")
    expect(log).to_have_attribute("role", "log")
    expect(log.get_by_role("listitem").filter(has_text="from bob")).to_contain_text("from bob")
    expect(desk_button(page, olga)).to_contain_text("You: from alice")

    # A client writing in another conversation is announced in a polite live region.
    announcer = page.locator("#announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    page.evaluate(
        """() => {
            window.__said = [];
            const region = document.getElementById("announcer");
            new MutationObserver(() => region.textContent && window.__said.push(region.textContent))
                .observe(region, {childList: true, characterData: true, subtree: true});
        }"""
    )
    inbound(web, agent, nina.client.phone, "hello?")
    expect(announcer).to_have_text("New message from Nina Newer")
    # One in the conversation being read is the log's to announce, not the region's.
    inbound(web, agent, olga.client.phone, "still there?")
    expect(message_item(page, "still there?")).to_have_count(1)
    inbound(web, agent, nina.client.phone, "hello again?")
    expect(desk_button(page, nina)).to_contain_text("hello again?")
    wait_until(lambda: len(page.evaluate("window.__said")) >= 2, timeout=10)
    assert page.evaluate("window.__said") == ["New message from Nina Newer"] * 2
    assert page.errors == []


def test_a_deleted_help_desk_leaves_the_inbox_live(agent, make_client, help_desk, web, new_page):
    from chat.services import help_desk_open

    # given alice reading one conversation, with another in her inbox
    other, _ = help_desk_open(client=make_client(agent.organization))
    page = new_page("alice")
    expect(desk_button(page, other)).to_have_count(1)
    desk_button(page, help_desk).click()
    expect(page.locator("#conv-title")).to_have_text(help_desk.client.name)

    # when another agent deletes both over the API
    for desk in (other, help_desk):
        gone = agent.http(web.url).delete(f"/api/help-desks/{desk.uuid}/")
        assert gone.status_code == 204, gone.text

    # then both leave her inbox without a reload, and the open one closes
    expect(desk_button(page, other)).to_have_count(0)
    expect(desk_button(page, help_desk)).to_have_count(0)
    expect(page.locator("#conv")).to_be_hidden()
    assert page.errors == []
