"""A new visitor's `start` requests, counted in a real browser (page.on("request")).

A new visitor with a required pre-chat phone sends exactly two: one when the chat
opens (it creates the visitor and brings the inbox's pre-chat settings) and one with
the phone. The bug: the first `start` of an organization whose event log had no counter
yet answered `last_event_id: 0`; the socket, resuming from 0, was told to resync (the
counter was seeded at its join) and sent a third, contact-less `start`. Whose answer,
late, overwrote the one with the phone: the pre-chat form came back and the message box
was hidden.

The second test makes a resync happen while the pre-chat `start` is in flight, the way
production does (the org's log lost, as after a Redis restart, and the socket
reconnecting), and holds that older `start`'s answer until the newer one has been
applied: the widget must ignore it (answers older than the newest `start` sent).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.console.conftest import SAFE, browser  # noqa: F401 (the module's browser fixture)
from tests.widget.test_browser import host_site  # noqa: F401 (the customer's site)

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = "79161234567"
RATES = {"WIDGET_IP_RATE": "100000/min", "WIDGET_VISITOR_RATE": "100000/min"}


def _pump_until(page: Any, predicate: Any, timeout: float = 15.0) -> Any:
    """Poll with a deadline, letting Playwright deliver its events between polls (the
    sync API delivers them only while the test calls into it)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        page.wait_for_timeout(50)


class Traffic:
    """The page's `start` requests (bodies, in the order sent) and socket frames."""

    def __init__(self, page: Any) -> None:
        self.starts: list[dict[str, Any]] = []
        self.finished = 0
        self.frames: list[str] = []
        page.on("request", self._request)
        page.on("requestfinished", self._finished)
        page.on("requestfailed", self._finished)
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    @staticmethod
    def _is_start(request: Any) -> bool:
        return request.method == "POST" and request.url.endswith("/start/")

    def _request(self, request: Any) -> None:
        if self._is_start(request):
            self.starts.append(request.post_data_json or {})

    def _finished(self, request: Any) -> None:
        if self._is_start(request):
            self.finished += 1

    def _frame(self, payload: Any) -> None:
        self.frames.append(payload if isinstance(payload, str) else payload.decode())

    def count(self, frame_type: str) -> int:
        return sum(json.loads(f).get("type") == frame_type for f in self.frames)

    def settled(self) -> bool:
        return self.finished == len(self.starts)


def _embed(site_server: dict[str, Any], web: Any, agent: Any) -> tuple[str, Any]:
    from widget.inboxes import web_inbox_create

    site = f"http://127.0.0.1:{site_server['port']}"
    inbox = web_inbox_create(
        organization=agent.organization,
        name="Shop",
        allowed_origins=[site],
        greeting="Hello!",
        prechat_phone="required",
    )
    site_server["page"]["html"] = (
        "<!doctype html><html><head><title>Shop</title></head><body><h1>Shop</h1>"
        f'<script src="{web.url}/static/widget/widget.js" data-inbox="{inbox.token}"></script>'
        "</body></html>"
    ).encode()
    return site, inbox


def _open_chat(
    chromium: Any, start_web: Any, site_server: dict[str, Any], agent: Any
) -> tuple[Any, Any, Traffic, Any]:
    """The platform started, the widget embedded on the customer's site, a new visitor's
    page watched from its first request, and the chat opened: (web, page, traffic, dialog)."""
    web = start_web(**SAFE, **RATES)
    site, _ = _embed(site_server, web, agent)
    page = chromium.new_context().new_page()
    traffic = Traffic(page)
    page.goto(site + "/")
    page.get_by_role("button", name="Open chat").click()
    return web, page, traffic, page.get_by_role("dialog")


def _desk_with(api: Any, text: str) -> str | None:
    """The help desk whose history holds `text`, as the agent's API shows it."""
    listed = api.get("/api/help-desks/")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    for desk in body["results"] if isinstance(body, dict) else body:
        history = api.get(f"/api/help-desks/{desk['uuid']}/history/").json()
        messages = history["results"] if isinstance(history, dict) else history
        if any(m.get("message") == text or m.get("text") == text for m in messages):
            return str(desk["uuid"])
    return None


def test_new_visitor_with_required_phone_sends_one_start_per_step(
    browser,  # noqa: F811
    start_web,
    host_site,  # noqa: F811
    agent,
):
    from widget.models import Visitor

    # when: the chat opens, the phone is entered, a message sent
    web, page, traffic, dialog = _open_chat(browser, start_web, host_site, agent)
    dialog.get_by_label("Phone (required)").fill(PHONE)
    dialog.get_by_role("button", name="Start chat").click()
    box = dialog.get_by_label("Message")
    box.wait_for()
    box.fill("Where is my order?")
    box.press("Enter")

    # then: the message reaches the agents' API, on a client with the phone
    api = agent.http(web.url)
    desk = _pump_until(page, lambda: _desk_with(api, "Where is my order?"))
    assert Visitor.objects.get().client.phone == PHONE
    # an agent's reply shows live: the visitor's socket is past its `hello`, so a resync
    # (sent before the `hello`) would have made its `start` by now
    assert api.post("/api/send-message/", data={"help_desk": desk, "message": "Today!"}).is_success
    dialog.get_by_text("Today!").wait_for()
    _pump_until(page, traffic.settled)
    assert traffic.count("resync_required") == 0, traffic.frames
    assert [s.get("phone") for s in traffic.starts] == [None, PHONE], traffic.starts
    assert dialog.get_by_label("Message").is_visible()
    assert dialog.locator("form.prechat").is_hidden()
    page.context.close()


def test_an_older_start_answering_late_never_overwrites_a_newer_one(
    browser,  # noqa: F811
    start_web,
    host_site,  # noqa: F811
    agent,
):
    from core.redis import get_redis
    from widget.models import Visitor

    web, page, traffic, dialog = _open_chat(browser, start_web, host_site, agent)
    phone = dialog.get_by_label("Phone (required)")
    phone.wait_for()
    _pump_until(page, lambda: traffic.count("hello") == 1)

    # given: a `start` without the contact answered by the server now, its answer held
    held: list[tuple[Any, Any]] = []

    def hold_contactless(route: Any) -> None:
        if "phone" in (route.request.post_data_json or {}):
            route.continue_()
        else:
            held.append((route, route.fetch()))

    page.route("**/start/", hold_contactless)
    # the organization's log lost and the live connection cut, as a Redis restart does:
    # the socket reconnects, is told to resync, and the widget sends that `start`
    redis = get_redis()
    lost = list(redis.scan_iter(f"events:{{{agent.organization.pk}}}:*"))
    assert lost
    redis.delete(*lost)
    redis.client_kill_filter(_type="pubsub")
    _pump_until(page, lambda: held)
    assert traffic.count("resync_required") == 1
    assert Visitor.objects.get().client.phone == ""  # its answer says: no phone yet

    # when: the phone is entered (a newer `start`, answered at once), then the older
    # answer arrives
    phone.fill(PHONE)
    dialog.get_by_role("button", name="Start chat").click()
    box = dialog.get_by_label("Message")
    box.wait_for()
    route, response = held[0]
    route.fulfill(response=response)
    _pump_until(page, traffic.settled)
    page.unroute("**/start/")

    # then: the message box stays, the pre-chat form does not come back, a message goes
    assert [s.get("phone") for s in traffic.starts] == [None, None, PHONE], traffic.starts
    assert box.is_visible()
    assert dialog.locator("form.prechat").is_hidden()
    box.fill("Still there?")
    box.press("Enter")
    api = agent.http(web.url)
    _pump_until(page, lambda: _desk_with(api, "Still there?"))
    assert Visitor.objects.get().client.phone == PHONE
    page.context.close()
