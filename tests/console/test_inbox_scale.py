"""Rendering that scales (issue 13 item 8): an inbox of 10,000 conversations receiving
client messages at 20 a second (each one a `new_message` and an `update_helpdesk`
event) updates one row per event. Measured in the browser: the script time per event
and the long tasks (PerformanceObserver 'longtask', > 50 ms) while the messages arrive,
printed beside the cost of one full rebuild of the list (what every event cost before)
measured in the same page. Asserted: every event applied, the untouched rows never
rebuilt, the list in order; no time is asserted (figures: /work/notes and BENCHMARKS.md)."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import wait_until
from tests.console.conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

SHARED_WORKER = False  # inbound messages need no worker
DESKS = 10_000
MESSAGES = 100  # 5 s at 20 a second
RATE = 20.0

LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver(list => {
    for (const entry of list.getEntries())
        window.__longTasks.push([entry.startTime, entry.duration]);
}).observe({type: "longtask", buffered: true});
"""


def _seed(org, n):
    from django.utils import timezone

    from chat.models import Client, HelpDesk

    now = timezone.now()
    clients = Client.objects.bulk_create(
        Client(organization=org, name=f"Scale {i:05d}", phone=f"7926{i:07d}", operator_code="926")
        for i in range(n)
    )
    desks = HelpDesk.objects.bulk_create(
        HelpDesk(organization=org, client=client) for client in clients
    )
    # spread over the last days, so the order is the seeded one
    for offset, desk in enumerate(desks):
        desk.last_activity_at = now - timedelta(minutes=offset + 1)
    HelpDesk.objects.bulk_update(desks, ["last_activity_at"], batch_size=2000)
    return clients, desks


def test_ten_thousand_conversations_take_twenty_messages_a_second_one_row_each(
    agent, org, web, new_page
):
    clients, desks = _seed(org, DESKS)
    page = new_page()
    page.add_init_script(LONG_TASKS)
    from tests.console.conftest import login

    login(page, "alice")
    # The page's own first load (and the one the socket's hello may start) must be over:
    # one answering after loadEverything's pages would reset the list under it.
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "live")
    expect(page.locator("#inbox-list > li").first).to_be_visible()
    load_start = time.monotonic()
    loaded = page.evaluate("consoleDebug.inbox.loadEverything()")
    load_s = time.monotonic() - load_start
    assert loaded == DESKS
    expect(page.locator("#inbox-list > li")).to_have_count(DESKS)
    baseline = [page.evaluate("consoleDebug.inbox.rebuildTiming()") for _ in range(1)]
    # A row nobody writes to is marked: a rebuild would lose the mark.
    untouched = str(desks[-1].uuid)
    page.evaluate(
        "uuid => { document.querySelector(`#inbox-list li[data-desk='${uuid}']`).__mark = 1; }",
        untouched,
    )
    applied_before = len(page.evaluate("consoleDebug.appliedEventIds()"))
    started_at = page.evaluate("performance.now()")

    # every 5th of the 10,000 from the end (old conversations jump to the top)
    targets = [clients[DESKS - 2 - 5 * i] for i in range(MESSAGES)]
    with httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {agent.key}"}) as http:
        start = time.monotonic()
        for i, client in enumerate(targets):
            delay = start + i / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the sender at 20/s, not waiting for work
            response = http.post(
                "/api/inbound-message/",
                json={"organization": org.slug, "phone": client.phone, "message": f"burst {i}"},
            )
            assert response.status_code == 201, response.text
        sent_in = time.monotonic() - start

    def all_shown():
        return page.evaluate(
            """n => Array.from({length: n}, (_, i) => i).every(i =>
                   document.querySelector('#inbox-list').textContent.includes(`burst ${i}`))""",
            MESSAGES,
        )

    wait_until(all_shown, timeout=60)
    applied = page.evaluate("consoleDebug.appliedEventIds()")[applied_before:]
    assert len(applied) >= 2 * MESSAGES  # a new_message and an update_helpdesk each
    assert page.evaluate("consoleDebug.inbox.orderMatchesDom()")
    expect(page.locator("#inbox-list > li")).to_have_count(DESKS)
    first = page.locator("#inbox-list > li").first
    expect(first).to_contain_text(f"burst {MESSAGES - 1}")
    assert (
        page.evaluate(
            "uuid => document.querySelector(`#inbox-list li[data-desk='${uuid}']`).__mark",
            untouched,
        )
        == 1
    ), "the untouched rows were rebuilt"

    timings = page.evaluate("consoleDebug.eventTimings()")[-len(applied) :]
    long_tasks = [d for s, d in page.evaluate("window.__longTasks") if s >= started_at]
    p95 = statistics.quantiles(timings, n=20)[-1] if len(timings) > 1 else timings[0]
    print(
        f"\ninbox of {DESKS} conversations (loaded in {load_s:.1f} s, 200 a page), "
        f"{MESSAGES} client messages in {sent_in:.1f} s "
        f"({len(applied)} events)\n"
        f"  per event (one row): mean {statistics.mean(timings):.2f} ms, "
        f"p95 {p95:.2f} ms, max {max(timings):.2f} ms (script)\n"
        f"  long tasks > 50 ms while they arrived: {len(long_tasks)}"
        f"{f' (max {max(long_tasks):.0f} ms)' if long_tasks else ''}\n"
        f"  baseline, one full rebuild of the list (the old way, per event): "
        + ", ".join(
            f"{b['script']:.0f} ms script / {b['withLayout']:.0f} ms with layout" for b in baseline
        )
    )
    screenshot(page, "inbox-10000.png")
    assert page.errors == []
