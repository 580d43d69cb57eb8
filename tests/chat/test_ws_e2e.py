"""The websocket hub through a real daphne, with a real websocket client and real HTTP.

Every HTTP call here goes over the network to a daphne process (`agent.http(web.url)`),
never through Django's in-process test client, so "two web processes" really are two.
"""

from __future__ import annotations

import threading

import pytest

from core.events import event_append
from tests.conftest import wait_until
from tests.wsclient import WS, data

pytestmark = pytest.mark.django_db(transaction=True)


def _ws(web, org, key, **query):
    qs = "&".join([f"token={key}"] + [f"{k}={v}" for k, v in query.items()])
    return WS(f"{web.ws_url}/ws/chat/{org.slug}/?{qs}")


def _send(http, help_desk, text):
    response = http.post(
        "/api/send-message/", data={"help_desk": str(help_desk.uuid), "message": text}
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_agent_receives_new_message_and_helpdesk_update(start_web, agent, help_desk, sender):
    web = start_web()
    ws = _ws(web, agent.organization, agent.key)
    assert ws.recv()["type"] == "hello"

    sent = _send(agent.http(web.url), help_desk, "hi")

    new = ws.recv_until(lambda f: f["type"] == "new_message")
    assert data(new)["uuid"] == sent["uuid"]
    assert data(new)["message"] == "hi"
    assert data(new)["status"] == "sending"
    desk = ws.recv_until(lambda f: f["type"] == "update_helpdesk")
    assert data(desk)["last_message"]["message"] == "hi"
    assert desk["id"] > new["id"]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("bad_token", 4401),
        ("non_member", 4403),
        # an unknown organization is not told apart from someone else's (docs/security.md)
        ("unknown_org", 4403),
        ("not_a_slug", 4403),
        ("anonymous", 4403),
    ],
)
def test_refusals_use_design_close_codes(start_web, agent, make_agent, make_org, case, expected):
    web = start_web()
    other = make_agent("mallory", make_org("evil"))
    url = {
        "bad_token": f"{web.ws_url}/ws/chat/acme/?token=nope",
        "non_member": f"{web.ws_url}/ws/chat/acme/?token={other.key}",
        "unknown_org": f"{web.ws_url}/ws/chat/nosuch/?token={agent.key}",
        "not_a_slug": f"{web.ws_url}/ws/chat/No_Such.Org/?token={agent.key}",
        "anonymous": f"{web.ws_url}/ws/chat/acme/",
    }[case]
    assert WS(url).close_code() == expected


def test_client_frames_outside_closed_set_get_error_and_reach_nobody(start_web, agent, make_agent):
    web = start_web()
    bob = make_agent("bob", agent.organization)
    alice_ws, bob_ws = (
        _ws(web, agent.organization, agent.key),
        _ws(web, agent.organization, bob.key),
    )
    alice_ws.recv(), bob_ws.recv()

    alice_ws.send({"type": "new_message", "data": '{"message": "injected"}'})
    assert alice_ws.recv()["type"] == "error"
    bob_ws.send({"type": "ping"})
    # bob's next frame is his own pong: the injected frame never reached him
    assert bob_ws.recv()["type"] == "pong"


def test_typing_and_read_frames(start_web, agent, make_agent, help_desk, make_org, make_client):
    from chat.services import help_desk_open

    # given alice in two organizations, bob in acme, carol in the other organization
    web = start_web()
    bob = make_agent("bob", agent.organization)
    other = make_org("other")
    from core.services import membership_add

    membership_add(organization=other, user=agent.user, role="agent")
    carol = make_agent("carol", other)
    other_desk, _ = help_desk_open(client=make_client(other))
    alice_ws = _ws(web, agent.organization, agent.key)
    bob_ws = _ws(web, agent.organization, bob.key)
    carol_ws = _ws(web, other, carol.key)
    for ws in (alice_ws, bob_ws, carol_ws):
        ws.recv()

    # when alice types in an acme help desk, bob sees it (no id: not part of the log)
    alice_ws.send({"type": "typing", "help_desk": str(help_desk.uuid)})
    typing = bob_ws.recv_until(lambda f: f["type"] == "typing")
    assert "id" not in typing
    assert data(typing) == {"help_desk": str(help_desk.uuid), "agent": "alice"}

    # when alice, on her acme socket, names the other organization's help desk
    alice_ws.send({"type": "typing", "help_desk": str(other_desk.uuid)})
    # then it is "not found" there, and nobody in either organization hears of it
    assert alice_ws.recv_until(lambda f: f["type"] == "error")["message"] == "Help desk not found."
    for ws in (bob_ws, carol_ws):
        ws.send({"type": "ping"})
        frame = ws.recv_until(lambda f: f["type"] in ("pong", "typing"))
        assert frame["type"] == "pong", frame

    # when alice reads the acme desk, it is read for alice only (per-agent unread, issue 13):
    # the event names her, so her other tabs clear it, and bob's count does not move
    from chat.services import message_receive

    message_receive(organization=agent.organization, phone=help_desk.client.phone, text="hey")
    bob_ws.recv_until(lambda f: f["type"] == "update_helpdesk")
    alice_ws.send({"type": "read", "help_desk": str(help_desk.uuid)})
    read = bob_ws.recv_until(lambda f: f["type"] == "help_desk_read")
    assert data(read) == {"help_desk": str(help_desk.uuid), "agent": agent.user.pk}
    desk_url = f"/api/help-desks/{help_desk.uuid}/"
    assert agent.client().get(desk_url).json()["unread_count"] == 0
    assert bob.client().get(desk_url).json()["unread_count"] == 1


def test_two_web_processes_see_each_others_events(start_web, agent, help_desk, sender):
    web1, web2 = start_web(), start_web()
    ws1 = _ws(web1, agent.organization, agent.key)
    ws2 = _ws(web2, agent.organization, agent.key)
    ws1.recv(), ws2.recv()

    # a message posted to web1 reaches a socket on web2, and the other way round
    _send(agent.http(web1.url), help_desk, "via one")
    assert data(ws2.recv_until(lambda f: f["type"] == "new_message"))["message"] == "via one"
    _send(agent.http(web2.url), help_desk, "via two")
    frame = ws1.recv_until(lambda f: f["type"] == "new_message" and "two" in f["data"])
    assert data(frame)["message"] == "via two"


def test_resume_after_disconnect_replays_missed_events_without_gap_or_duplicate(
    start_web, agent, help_desk, sender
):
    web = start_web()
    ws = _ws(web, agent.organization, agent.key)
    ws.recv()
    http = agent.http(web.url)
    _send(http, help_desk, "one")
    last = ws.recv_until(lambda f: f["type"] == "update_helpdesk")["id"]
    ws.close()

    for text in ("two", "three"):
        _send(http, help_desk, text)

    ws2 = _ws(web, agent.organization, agent.key, last_event_id=last)
    hello = ws2.recv_until(lambda f: f["type"] == "hello")
    replayed = [f for f in ws2.frames if "id" in f]
    ids = [f["id"] for f in replayed]
    assert ids == list(range(last + 1, last + 1 + len(ids)))  # contiguous: no gap, no duplicate
    texts = [data(f)["message"] for f in replayed if f["type"] == "new_message"]
    assert texts == ["two", "three"]
    assert hello["last_event_id"] == ids[-1]


def test_resume_while_events_keep_coming_has_no_gap_or_duplicate(start_web, agent):
    # given events in the log, and a publisher that goes on while the client resumes
    web = start_web()
    org_id = agent.organization.pk
    first = event_append(organization_id=org_id, event_type="update_message", data='{"n":0}')
    for n in range(1, 200):
        event_append(organization_id=org_id, event_type="update_message", data=f'{{"n":{n}}}')
    total = 600
    started = threading.Event()

    def publish() -> None:
        started.set()
        for n in range(200, total):
            event_append(organization_id=org_id, event_type="update_message", data=f'{{"n":{n}}}')

    publisher = threading.Thread(target=publish)
    publisher.start()
    started.wait(5)

    # when a client resumes from the first event while the publisher runs
    ws = _ws(web, agent.organization, agent.key, last_event_id=first)
    publisher.join(30)
    last = first + total - 1
    ws.recv_until(lambda f: f.get("id") == last, timeout=30)

    # then it got every event after `first` exactly once, in order: replayed, queued
    # during the replay, then live
    ids = [f["id"] for f in ws.frames if "id" in f]
    assert ids == list(range(first + 1, last + 1))
    assert [data(f)["n"] for f in ws.frames if "id" in f] == list(range(1, total))


def test_resume_from_trimmed_id_says_resync_required(start_web, agent, redis_client, settings):
    web = start_web()
    ws = _ws(web, agent.organization, agent.key, last_event_id=1)
    assert ws.recv()["type"] == "resync_required"


def test_agent_of_another_organization_sees_nothing(
    start_web, agent, help_desk, make_agent, make_org, sender
):
    web = start_web()
    outsider = make_agent("eve", make_org("other"))
    ws_out = _ws(web, outsider.organization, outsider.key)
    ws_in = _ws(web, agent.organization, agent.key)
    ws_out.recv(), ws_in.recv()

    _send(agent.http(web.url), help_desk, "secret")

    # the organization's own agent receives it (so the event did go out) ...
    ws_in.recv_until(lambda f: f["type"] == "update_helpdesk")
    # ... and the outsider's next frame is its own pong: nothing of it reached her
    ws_out.send({"type": "ping"})
    assert ws_out.recv()["type"] == "pong"
    assert ws_out.events() == []
    # and over HTTP: the other organization's help desk does not exist for her
    outsider_http = outsider.http(web.url)
    assert outsider_http.get(f"/api/help-desks/{help_desk.uuid}/history/").status_code == 404
    listed = outsider_http.get("/api/help-desks/", params={"organization": "acme"})
    assert listed.status_code in (403, 404), listed.text
    wait_until(lambda: outsider_http.get("/api/help-desks/").json() == [], timeout=5)
