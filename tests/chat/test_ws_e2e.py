"""The websocket hub through a real daphne, with a real websocket client."""

from __future__ import annotations

import pytest

from tests.wsclient import WS, data


def _ws(web, org, key, **query):
    qs = "&".join([f"token={key}"] + [f"{k}={v}" for k, v in query.items()])
    return WS(f"{web.ws_url}/ws/chat/{org.slug}/?{qs}")


@pytest.mark.django_db(transaction=True)
def test_agent_receives_new_message_and_helpdesk_update(start_web, agent, help_desk, sender):
    web = start_web()
    ws = _ws(web, agent.organization, agent.key)
    assert ws.recv()["type"] == "hello"

    response = agent.client().post(
        f"{web.url}/api/send-message/", {"help_desk": str(help_desk.uuid), "message": "hi"}
    )
    assert response.status_code == 201, response.content

    new = ws.recv_until(lambda f: f["type"] == "new_message")
    assert data(new)["message"] == "hi"
    assert data(new)["status"] == "sending"
    desk = ws.recv_until(lambda f: f["type"] == "update_helpdesk")
    assert data(desk)["last_message"]["message"] == "hi"
    assert desk["id"] > new["id"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("case", "expected"),
    [("bad_token", 4401), ("non_member", 4403), ("unknown_org", 4404), ("anonymous", 4403)],
)
def test_refusals_use_design_close_codes(start_web, agent, make_agent, make_org, case, expected):
    web = start_web()
    other = make_agent("mallory", make_org("evil"))
    url = {
        "bad_token": f"{web.ws_url}/ws/chat/acme/?token=nope",
        "non_member": f"{web.ws_url}/ws/chat/acme/?token={other.key}",
        "unknown_org": f"{web.ws_url}/ws/chat/nosuch/?token={agent.key}",
        "anonymous": f"{web.ws_url}/ws/chat/acme/",
    }[case]
    assert WS(url).close_code() == expected


@pytest.mark.django_db(transaction=True)
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


@pytest.mark.django_db(transaction=True)
def test_two_web_processes_see_each_others_events(start_web, agent, help_desk, sender):
    web1, web2 = start_web(), start_web()
    ws = _ws(web2, agent.organization, agent.key)
    ws.recv()
    agent.client().post(
        f"{web1.url}/api/send-message/", {"help_desk": str(help_desk.uuid), "message": "x"}
    )
    assert data(ws.recv_until(lambda f: f["type"] == "new_message"))["message"] == "x"


@pytest.mark.django_db(transaction=True)
def test_resume_after_disconnect_replays_missed_events_without_gap_or_duplicate(
    start_web, agent, help_desk, sender
):
    web = start_web()
    ws = _ws(web, agent.organization, agent.key)
    ws.recv()
    api = agent.client()
    api.post(f"{web.url}/api/send-message/", {"help_desk": str(help_desk.uuid), "message": "one"})
    last = ws.recv_until(lambda f: f["type"] == "update_helpdesk")["id"]
    ws.close()

    for text in ("two", "three"):
        api.post(
            f"{web.url}/api/send-message/", {"help_desk": str(help_desk.uuid), "message": text}
        )

    ws2 = _ws(web, agent.organization, agent.key, last_event_id=last)
    hello = ws2.recv_until(lambda f: f["type"] == "hello")
    replayed = [f for f in ws2.frames if "id" in f]
    ids = [f["id"] for f in replayed]
    assert ids == list(range(last + 1, last + 1 + len(ids)))  # contiguous: no gap, no duplicate
    texts = [data(f)["message"] for f in replayed if f["type"] == "new_message"]
    assert texts == ["two", "three"]
    assert hello["last_event_id"] == ids[-1]


@pytest.mark.django_db(transaction=True)
def test_resume_from_trimmed_id_says_resync_required(start_web, agent, redis_client, settings):
    web = start_web()
    ws = _ws(web, agent.organization, agent.key, last_event_id=1)
    assert ws.recv()["type"] == "resync_required"


@pytest.mark.django_db(transaction=True)
def test_agent_of_another_organization_sees_nothing(
    start_web, agent, help_desk, make_agent, make_org, sender
):
    web = start_web()
    outsider = make_agent("eve", make_org("other"))
    ws_out = _ws(web, outsider.organization, outsider.key)
    ws_out.recv()
    agent.client().post(
        f"{web.url}/api/send-message/", {"help_desk": str(help_desk.uuid), "message": "secret"}
    )
    # and over HTTP: the other organization's help desk is a 404
    assert outsider.client().get(f"/api/help-desks/{help_desk.uuid}/history/").status_code == 404
    ws_out.send({"type": "ping"})
    assert ws_out.recv()["type"] == "pong"
