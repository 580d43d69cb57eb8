"""The widget's public API and the agents' side of it, in process, as an attacker too."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from chat.models import Client, HelpDesk, Message
from core.models import Delivery
from tests.widget.conftest import ORIGIN, Widget

pytestmark = pytest.mark.django_db


def _hash(secret: str, user_id: str) -> str:
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def test_visitor_writes_agent_replies_on_the_socket_not_sms(widget, agent):
    # given a visitor who starts and writes
    started = widget.start(page_url="https://shop.example/cart", utc_offset=180)
    assert started.status_code == 201, started.json()
    assert started["Access-Control-Allow-Origin"] == ORIGIN
    sent = widget.post("messages", {"text": "Where is my order?"})
    assert sent.status_code == 201, sent.json()
    desk = HelpDesk.objects.get(uuid=sent.json()["help_desk"])
    assert desk.client.channel == Client.Channel.WEB and desk.client.phone == ""
    # when an agent replies through the ordinary API
    reply = agent.client().post(
        "/api/send-message/", {"help_desk": str(desk.uuid), "message": "On its way"}
    )
    assert reply.status_code == 201, reply.json()
    # then no SMS delivery exists, and the visitor's history (a reload) has both, with
    # the agent's name and nothing agent-only
    assert not Delivery.objects.exists()
    assert Message.objects.get(uuid=reply.json()["uuid"]).status == Message.Status.SENT
    again = widget.start()
    assert again.status_code == 200
    history = again.json()["messages"]
    assert [(m["from"], m["text"]) for m in history] == [
        ("visitor", "Where is my order?"),
        ("agent", "On its way"),
    ]
    assert history[1]["agent"] == "alice"
    assert set(history[0]) == {
        "uuid",
        "help_desk",
        "text",
        "file",
        "file_name",
        "from",
        "agent",
        "status",
        "created_at",
    }
    # and agents see the visitor's context
    context = agent.client().get(f"/api/help-desks/{desk.uuid}/visitor/")
    assert context.status_code == 200
    assert context.json()["page_url"] == "https://shop.example/cart"
    assert context.json()["utc_offset"] == 180


def test_attachment_within_chat_limits(widget, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    widget.start()
    ok = widget.post(
        "messages",
        {"text": "", "file": SimpleUploadedFile("a.png", b"\x89PNG....", "image/png")},
        format="multipart",
    )
    assert ok.status_code == 201, ok.json()
    assert ok.json()["file_name"] == "a.png" and "/api/files/" in ok.json()["file"]
    html = widget.post(
        "messages",
        {"file": SimpleUploadedFile("x.html", b"<script>", "text/plain")},
        format="multipart",
    )
    assert html.status_code == 400 and "file" in html.json()["error"]["fields"]


def test_origin_not_allowed_and_unknown_inbox(widget, inbox):
    evil = Widget(inbox, origin="https://evil.example")
    refused = evil.start()
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in refused
    no_origin = Widget(inbox, origin="")
    assert no_origin.start().status_code == 403
    inbox.token = "x" * 24
    assert Widget(inbox).start().status_code == 404


def test_visitor_token_is_bound_to_visitor_and_inbox(widget, inbox, org):
    from widget.inboxes import web_inbox_create

    widget.start()
    widget.post("messages", {"text": "mine"})
    # a forged or another inbox's token
    other = Widget(web_inbox_create(organization=org, name="Two", allowed_origins=[ORIGIN]))
    other.token = widget.token
    assert other.post("messages", {"text": "x"}).status_code == 401
    widget.token = widget.token[:-2] + "xx"
    assert widget.post("messages", {"text": "x"}).status_code == 401
    # a second visitor sees nothing of the first
    second = Widget(inbox)
    assert second.start().json()["messages"] == []


def test_identity_verification(widget, inbox):
    good = _hash(inbox.secret, "user-42")
    first = widget.start(user_id="user-42", user_hash=good)
    assert first.status_code == 201 and first.json()["verified"] is True
    widget.post("messages", {"text": "from my laptop"})
    # another device, same verified user: the same history
    phone = Widget(inbox)
    resumed = phone.start(user_id="user-42", user_hash=good)
    assert resumed.status_code == 200
    assert [m["text"] for m in resumed.json()["messages"]] == ["from my laptop"]
    # forged: refused with a clear error, and nothing of the user's leaks
    for forged in ("0" * 64, "", _hash("guess", "user-42")):
        attacker = Widget(inbox)
        refused = attacker.start(user_id="user-42", user_hash=forged)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "identity_invalid"
    # an anonymous token cannot be upgraded to a user id without the hash
    anon = Widget(inbox)
    anon.start()
    assert anon.start(user_id="user-42").status_code == 403


def test_prechat_required_and_offline(widget, inbox):
    from widget.inboxes import web_inbox_update

    web_inbox_update(
        web_inbox=inbox,
        data={"prechat_email": "required", "business_hours": [], "away_message": "Back at 9"},
    )
    config = widget.start().json()["config"]
    assert config["prechat"]["email"] == "required"
    refused = widget.post("messages", {"text": "hello"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "prechat_required"
    assert "email" in refused.json()["error"]["fields"]
    # no agent marked available: offline, and the message (with the email) is still taken
    assert config["online"] is False
    assert widget.start(email="v@example.com").status_code == 200
    assert widget.post("messages", {"text": "hello"}).status_code == 201
    assert Client.objects.get(email="v@example.com").help_desks.count() == 1


def test_rating_after_resolution_and_statistics(widget, agent, make_agent, make_org):
    widget.start()
    sent = widget.post("messages", {"text": "help"}).json()
    assert widget.post("rating", {"score": 5}).status_code == 409  # not resolved yet
    desk = HelpDesk.objects.get(uuid=sent["help_desk"])
    desk.status = "resolved" if "resolved" in HelpDesk.Status.values else "closed"
    desk.save()
    assert widget.post("rating", {"score": 0}).status_code == 400
    assert widget.post("rating", {"score": 4, "comment": "quick"}).status_code == 201
    assert widget.post("rating", {"score": 1}).status_code == 409  # once
    stats = agent.client().get("/api/web-inboxes/ratings/?organization=acme").json()
    assert stats == {
        "count": 1,
        "average": 4.0,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0},
    }
    shown = agent.client().get(f"/api/help-desks/{desk.uuid}/visitor/").json()["rating"]
    assert (shown["score"], shown["comment"]) == (4, "quick")
    outsider = make_agent("mallory", make_org("evil"))
    assert outsider.client().get("/api/web-inboxes/ratings/").json()["count"] == 0
    assert outsider.client().get(f"/api/help-desks/{desk.uuid}/visitor/").status_code == 404


def test_rate_limited_per_visitor(widget, settings):
    settings.WIDGET_VISITOR_RATE = "3/min"
    widget.start()
    codes = [widget.post("typing").status_code for _ in range(4)]
    assert 429 in codes
    limited = widget.post("typing")
    assert limited.status_code == 429 and int(limited["Retry-After"]) >= 1


def test_rate_limited_per_address(inbox, settings):
    settings.WIDGET_IP_RATE = "2/min"
    codes = [Widget(inbox).start().status_code for _ in range(4)]
    assert codes.count(429) >= 1


def test_inbox_crud_admins_only(agent, make_agent, make_org):
    api = agent.client()
    created = api.post(
        "/api/web-inboxes/",
        {
            "organization": "acme",
            "name": "Site",
            "allowed_origins": ["https://a.example:8443/", "http://b.example"],
            "business_hours": [{"weekday": 0, "start": "09:00", "end": "18:00"}],
            "timezone": "Europe/Moscow",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["allowed_origins"] == ["http://b.example", "https://a.example:8443"]
    assert len(body["secret"]) == 64
    listed = api.get("/api/web-inboxes/").json()
    assert "secret" not in listed["results"][0] if "results" in listed else listed[0]
    bad = api.post(
        "/api/web-inboxes/",
        {
            "organization": "acme",
            "name": "X",
            "allowed_origins": ["javascript:alert(1)"],
            "business_hours": [{"weekday": 9}],
            "timezone": "Mars/Base",
        },
        format="json",
    )
    assert bad.status_code == 400
    member = make_agent("bob", agent.organization, role="agent")
    assert (
        member.client()
        .patch(f"/api/web-inboxes/{body['id']}/", {"name": "Mine"}, format="json")
        .status_code
        == 403
    )
    outsider = make_agent("mallory", make_org("evil"))
    assert outsider.client().get(f"/api/web-inboxes/{body['id']}/").status_code == 404
    rotated = api.post(f"/api/web-inboxes/{body['id']}/rotate/", {}, format="json")
    assert rotated.status_code == 200 and rotated.json()["secret"] != body["secret"]


def test_a_visitor_cannot_take_a_customers_phone(widget, org, make_client, agent):
    # given an SMS client of the organization
    customer = make_client(org, phone="79161234567")
    # when a visitor gives that number (and another visitor a fresh one)
    taken = widget.start(phone="79161234567")
    fresh = Widget(widget.inbox).start(phone="79167654321")
    # then both are accepted alike (no oracle), the customer's contact is untouched and
    # the number is kept on the visitor for the agents
    assert taken.status_code == fresh.status_code == 201
    assert taken.json()["contact"]["phone"] == "79161234567"
    sent = widget.post("messages", {"text": "hi"}).json()
    desk = HelpDesk.objects.get(uuid=sent["help_desk"])
    assert desk.client_id != customer.pk and desk.client.phone == ""
    assert not customer.help_desks.exists()
    context = agent.client().get(f"/api/help-desks/{desk.uuid}/visitor/").json()
    assert context["phone"] == "79161234567"
    assert Client.objects.get(phone="79167654321").channel == Client.Channel.WEB
