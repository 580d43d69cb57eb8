"""The widget in a real browser, embedded by a page on another origin (issue 14's "done
when"): a visitor and an agent converse live both ways, with an attachment and typing;
the visitor reloads and keeps the conversation; a second visitor sees nothing of the
first; the same page under an origin not allowed gets no chat.

The agent is an API client plus a real websocket (the console's own browser tests cover
its page), which saves a second browser context's start-up.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import free_port
from tests.console.conftest import SAFE, browser  # noqa: F401 (the module's browser fixture)
from tests.wsclient import WS, data

pytestmark = pytest.mark.django_db(transaction=True)

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
def host_site() -> Iterator[dict[str, Any]]:
    """A plain web server on its own port: the customer's site that embeds the widget."""
    page: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.get("html", b"")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"port": port, "page": page}
    server.shutdown()
    server.server_close()


def test_visitor_and_agent_converse_live(browser, start_web, host_site, agent, tmp_path):  # noqa: F811
    from widget.inboxes import web_inbox_create
    from widget.models import Visitor

    web = start_web(**SAFE, WIDGET_IP_RATE="100000/min", WIDGET_VISITOR_RATE="100000/min")
    site = f"http://127.0.0.1:{host_site['port']}"
    inbox = web_inbox_create(
        organization=agent.organization, name="Shop", allowed_origins=[site], greeting="Hello!"
    )
    host_site["page"]["html"] = (
        "<!doctype html><html><head><title>Shop</title></head><body><h1>Shop</h1>"
        f'<script src="{web.url}/static/widget/widget.js" data-inbox="{inbox.token}"></script>'
        "</body></html>"
    ).encode()
    staff = WS(f"{web.ws_url}/ws/chat/acme/?token={agent.key}")
    assert staff.recv()["type"] == "hello"
    api = agent.http(web.url)

    context = browser.new_context(viewport={"width": 320, "height": 640})
    page = context.new_page()
    page.goto(site + "/")
    page.get_by_role("button", name="Open chat").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Hello!").wait_for()

    # visitor -> agent, live
    box = dialog.get_by_label("Message")
    box.fill("Hi, is my order shipped?")
    box.press("Enter")
    new = staff.recv_until(lambda f: f["type"] == "new_message")
    assert data(new)["message"] == "Hi, is my order shipped?"
    desk = data(new)["help_desk"]
    # the visitor typing (in a conversation: before the first message there is none)
    box.press_sequentially("my rec")
    typing = staff.recv_until(lambda f: f["type"] == "typing" and "visitor" in data(f))
    assert data(typing)["help_desk"] == desk

    # an attachment
    dialog.get_by_label("Attach a file").set_input_files(
        files=[{"name": "receipt.png", "mimeType": "image/png", "buffer": PNG}]
    )
    box.fill("my receipt")  # replaces what was typed
    dialog.get_by_role("button", name="Send").click()
    attached = staff.recv_until(lambda f: f["type"] == "new_message" and data(f)["file"])
    assert data(attached)["file_name"] == "receipt.png"

    # agent -> visitor: typing, then a reply shown live with the agent's name
    staff.send({"type": "typing", "help_desk": desk})
    dialog.get_by_text("alice is typing…").wait_for()
    reply = api.post("/api/send-message/", data={"help_desk": desk, "message": "Yes, today!"})
    assert reply.status_code == 201, reply.text
    dialog.get_by_text("Yes, today!").wait_for()
    assert dialog.locator("li.msg.agent .who").last.text_content() == "alice"
    # the open panel marks the reply read: the agents see it
    read = staff.recv_until(lambda f: f["type"] == "update_message" and data(f)["status"] == "read")
    assert data(read)["uuid"] == reply.json()["uuid"]
    # an agent reads the conversation: "Seen" under the visitor's last message, live
    assert api.post(f"/api/help-desks/{desk}/read/").status_code == 200
    dialog.locator("li.msg.visitor .seen").wait_for()
    assert dialog.locator("li.msg.visitor .seen").count() == 1
    assert dialog.locator("li.msg.visitor").last.locator(".seen").count() == 1

    # the visitor reloads and keeps the conversation (and the same visitor)
    page.reload()
    page.get_by_role("button", name="Open chat").click()
    page.get_by_role("dialog").get_by_text("Yes, today!").wait_for()
    assert page.get_by_role("dialog").get_by_text("receipt.png").count() == 1
    page.get_by_role("dialog").locator("li.msg.visitor .seen").wait_for()  # from start's seen
    assert Visitor.objects.count() == 1

    # a second visitor sees nothing of the first
    other = browser.new_context().new_page()
    other.goto(site + "/")
    other.get_by_role("button", name="Open chat").click()
    other.get_by_role("dialog").get_by_text("Hello!").wait_for()
    assert other.get_by_role("dialog").get_by_text("Yes, today!").count() == 0
    assert other.locator("li.msg.visitor").count() == 0

    # the same page on an origin that is not allowed: no chat, no visitor
    foreign = browser.new_context().new_page()
    foreign.goto(f"http://localhost:{host_site['port']}/")
    foreign.get_by_role("button", name="Open chat").click()
    foreign.get_by_role("dialog").locator(".notice").filter(has_text="fetch").wait_for()
    assert Visitor.objects.count() == 2
    for ctx in (context, other.context, foreign.context):
        ctx.close()
    staff.close()
