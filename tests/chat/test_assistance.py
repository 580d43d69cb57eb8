"""Assistance: POST /assistance/, routing job, accept, topics, webhooks (issue #4)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from chat.assistance import assistance_request_route, assistance_webhook_deliver
from chat.models import AssistanceRequest, AssistanceTopic, AssistanceWebhook, HelpDesk
from core.events import log_key
from core.models import Membership, Team, TeamMember
from core.services import api_key_create

pytestmark = pytest.mark.django_db


def bot_client(org: Any, scopes: list[str] | None = None) -> APIClient:
    _, raw = api_key_create(name="bot", organization=org, scopes=scopes)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def make_team(org: Any, slug: str, *agents: Any) -> Team:
    team = Team.objects.create(organization=org, slug=slug, name=slug.title())
    for order, agent in enumerate(agents):
        membership = Membership.objects.get(organization=org, user=agent.user)
        TeamMember.objects.create(team=team, membership=membership, order=order)
    return team


def make_topic(org: Any, name: str = "sales", team: Team | None = None, **kw: Any) -> Any:
    return AssistanceTopic.objects.create(organization=org, name=name, team=team, **kw)


def test_unknown_topic_is_400_listing_valid_ones_and_creates_nothing(org):
    make_topic(org, "sales")
    make_topic(org, "engineering")
    response = bot_client(org).post(
        "/assistance/", {"topic": "marketing", "description": "x"}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert "engineering" in error["fields"]["topic"][0] and "sales" in error["message"]
    assert AssistanceTopic.objects.count() == 2
    assert AssistanceRequest.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"description": "no topic"}, "topic"),
        ({"topic": "sales", "phone": "123"}, "phone"),
        ({"topic": "sales", "phone": "79160000000"}, "phone"),  # valid, but no such client
        ({"topic": "sales", "client": "not-a-uuid"}, "client"),
        ({"topic": "sales", "help_desk": "6d1f0f3c-6a4e-4f55-9d3c-0c3f5d2b1a10"}, "help_desk"),
        ({"topic": ["sales"]}, "topic"),
    ],
)
def test_bad_input_is_400_with_field_errors(org, body, field):
    make_topic(org)
    response = bot_client(org).post("/assistance/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


def test_malformed_json_is_400(org):
    response = bot_client(org).post("/assistance/", data="{nope", content_type="application/json")
    assert response.status_code == 400


def test_post_is_202_with_id_and_enqueues_routing(org, django_capture_on_commit_callbacks):
    make_topic(org)
    with django_capture_on_commit_callbacks() as callbacks:
        response = bot_client(org).post(
            "/assistance/", {"topic": "sales", "description": "help"}, format="json"
        )
    assert response.status_code == 202, response.content
    body = response.json()
    request = AssistanceRequest.objects.get(uuid=body["id"])
    assert body["event"] == body["id"] == str(request.uuid)  # the seed's {"event": <id>}
    assert body["status"] == "received" and body["topic"] == "sales"
    assert request.status == "received"
    assert request.description == "help"
    assert len(callbacks) == 1  # the routing job, enqueued after commit


def test_routing_is_round_robin_over_available_members(org, make_agent):
    a, b, c = (make_agent(name, org, role="agent") for name in ("ann", "ben", "cid"))
    team = make_team(org, "sales-team", a, b, c)
    make_topic(org, "sales", team)
    Membership.objects.filter(user=b.user).update(is_available=False)
    api = bot_client(org)

    assignees = []
    for _ in range(4):
        rid = api.post("/assistance/", {"topic": "sales"}, format="json").json()["id"]
        routed = assistance_request_route(request_id=AssistanceRequest.objects.get(uuid=rid).pk)
        assert routed is not None
        assignees.append(routed.assignee.username)

    assert assignees == ["ann", "cid", "ann", "cid"]


def test_routing_twice_is_a_no_op(org, make_agent):
    a, b = make_agent("ann", org), make_agent("ben", org)
    make_topic(org, "sales", make_team(org, "t", a, b))
    rid = bot_client(org).post("/assistance/", {"topic": "sales"}, format="json").json()["id"]
    pk = AssistanceRequest.objects.get(uuid=rid).pk
    first = assistance_request_route(request_id=pk)
    assistance_request_route(request_id=pk)
    request = AssistanceRequest.objects.get(pk=pk)
    assert first is not None and request.assignee == first.assignee
    assert AssistanceTopic.objects.get().rr_next == 1


def test_client_help_desk_is_opened_then_reused(org, make_client):
    client = make_client(org)
    make_topic(org)
    api = bot_client(org)
    pks = []
    for body in ({"phone": client.phone}, {"client": str(client.uuid)}):
        rid = api.post("/assistance/", {"topic": "sales", **body}, format="json").json()["id"]
        pks.append(AssistanceRequest.objects.get(uuid=rid).pk)
        assistance_request_route(request_id=pks[-1])
    desks = {AssistanceRequest.objects.get(pk=pk).help_desk_id for pk in pks}
    assert len(desks) == 1 and None not in desks
    assert HelpDesk.objects.filter(client=client).count() == 1


def test_accept_first_wins_second_is_409_and_checks_membership(
    org, make_agent, make_org, django_capture_on_commit_callbacks
):
    ann, ben = make_agent("ann", org), make_agent("ben", org)
    outsider = make_agent("eve", make_org("other"))
    make_topic(org)
    bot = bot_client(org)
    rid = bot.post("/assistance/", {"topic": "sales"}, format="json").json()["id"]

    assert outsider.client().post(f"/api/assistance/{rid}/accept/").status_code == 404
    assert bot.post(f"/api/assistance/{rid}/accept/").status_code == 403
    with django_capture_on_commit_callbacks() as callbacks:
        first = ann.client().post(f"/api/assistance/{rid}/accept/")
    assert first.status_code == 200 and first.json()["accepted_by"] == "ann"
    # not routed yet: routed to ann on the way (assistance_requested), then accepted
    assert len(callbacks) == 2
    assert ben.client().post(f"/api/assistance/{rid}/accept/").status_code == 409
    assert ann.client().post(f"/api/assistance/{rid}/accept/").status_code == 409
    assert AssistanceRequest.objects.get(uuid=rid).accepted_by == ann.user


def test_list_is_org_scoped_and_paginated(org, make_agent, make_org):
    ann = make_agent("ann", org)
    other = make_org("other")
    make_topic(org)
    make_topic(other)
    for _ in range(3):
        bot_client(org).post("/assistance/", {"topic": "sales"}, format="json")
    bot_client(other).post("/assistance/", {"topic": "sales"}, format="json")

    page = ann.client().get("/api/assistance/?page_size=2")
    assert page.status_code == 200
    assert len(page.json()) == 2 and 'rel="next"' in page["Link"]
    assert {r["organization"] for r in page.json()} == {"acme"}
    assert len(bot_client(other, ["read"]).get("/api/assistance/").json()) == 1
    assert ann.client().get("/api/assistance/?status=bogus").status_code == 400


def test_topics_api_admin_only_and_team_must_exist(org, make_agent):
    admin, plain = make_agent("ann", org, role="admin"), make_agent("ben", org, role="agent")
    make_team(org, "sales-team", admin)
    body = {"organization": "acme", "name": "sales", "team": "sales-team"}
    assert plain.client().post("/api/assistance/topics/", body, format="json").status_code == 403
    created = admin.client().post("/api/assistance/topics/", body, format="json")
    assert created.status_code == 201 and created.json()["team"] == "sales-team"
    dup = admin.client().post("/api/assistance/topics/", body, format="json")
    assert dup.status_code == 400
    bad = admin.client().post(
        "/api/assistance/topics/", {**body, "name": "x", "team": "nope"}, format="json"
    )
    assert bad.status_code == 400 and "team" in bad.json()["error"]["fields"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_routing_jobs_never_share_a_slot(org, make_agent):
    agents = [make_agent(name, org) for name in ("ann", "ben")]
    make_topic(org, "sales", make_team(org, "t", *agents))
    api = bot_client(org)
    pks = [
        AssistanceRequest.objects.get(
            uuid=api.post("/assistance/", {"topic": "sales"}, format="json").json()["id"]
        ).pk
        for _ in range(8)
    ]
    barrier = threading.Barrier(len(pks))

    def route(pk: int) -> None:
        barrier.wait()
        try:
            assistance_request_route(request_id=pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=route, args=(pk,)) for pk in pks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = {
        name: AssistanceRequest.objects.filter(assignee__username=name).count()
        for name in ("ann", "ben")
    }
    assert counts == {"ann": 4, "ben": 4}
    assert AssistanceTopic.objects.get().rr_next == 8


class _Receiver(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []
    fail_first = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append({"headers": dict(self.headers), "body": body})
        status = 500 if len(type(self).calls) <= type(self).fail_first else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver(settings):
    # The receiver is on loopback: allowed only with the development/test switch
    # (tests/chat/test_assistance_ssrf.py checks it is refused without it).
    settings.OUTBOUND_ALLOW_PRIVATE = True
    _Receiver.calls = []
    _Receiver.fail_first = 1
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver
    server.shutdown()


def test_webhook_is_signed_retried_with_backoff_and_every_attempt_recorded(org, receiver, settings):
    url, handler = receiver
    make_topic(org, webhook_url=url, webhook_secret="s3cret")
    rid = bot_client(org).post("/assistance/", {"topic": "sales"}, format="json").json()["id"]
    assistance_request_route(request_id=AssistanceRequest.objects.get(uuid=rid).pk)
    webhook = AssistanceWebhook.objects.get()

    # first attempt: the receiver answers 500 -> pending, retry in the future
    assert assistance_webhook_deliver(webhook_id=webhook.pk) == "pending"
    webhook.refresh_from_db()
    assert webhook.next_attempt_at is not None and webhook.next_attempt_at > timezone.now()
    # not due yet: a duplicate job does nothing
    assert assistance_webhook_deliver(webhook_id=webhook.pk) is None
    with time_machine.travel(webhook.next_attempt_at + timedelta(seconds=1)):
        assert assistance_webhook_deliver(webhook_id=webhook.pk) == "sent"
    assert assistance_webhook_deliver(webhook_id=webhook.pk) is None

    attempts = list(webhook.attempt_rows.values_list("number", "status_code", "error"))
    assert attempts == [(1, 500, "HTTP 500"), (2, 200, "")]
    assert len(handler.calls) == 2
    call = handler.calls[-1]
    signature = call["headers"]["X-Assistance-Signature"]
    fields = dict(part.split("=", 1) for part in signature.split(","))
    assert set(fields) == {"t", "v1"}
    assert abs(int(fields["t"]) - time.time()) < 120  # the attempt's time, signed
    signed = fields["t"].encode() + b"." + call["body"]
    assert fields["v1"] == hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest()
    # the body alone (the old scheme) no longer verifies: a replay cannot move t
    assert fields["v1"] != hmac.new(b"s3cret", call["body"], hashlib.sha256).hexdigest()
    payload = json.loads(call["body"])
    assert payload["type"] == "assistance_requested" and payload["data"]["id"] == rid


def test_sweeper_finds_unrouted_requests_and_stuck_webhooks(org, receiver):
    from chat.assistance import assistance_sweep

    url, _ = receiver
    make_topic(org, webhook_url=url)
    api = bot_client(org)
    lost = api.post("/assistance/", {"topic": "sales"}, format="json").json()["id"]
    routed = api.post("/assistance/", {"topic": "sales"}, format="json").json()["id"]
    assistance_request_route(request_id=AssistanceRequest.objects.get(uuid=routed).pk)
    webhook = AssistanceWebhook.objects.get()
    # a worker claimed the webhook and died
    AssistanceWebhook.objects.filter(pk=webhook.pk).update(
        status="sending", claimed_at=timezone.now(), attempts=1
    )
    assert assistance_sweep() == {"requests": [], "webhooks": []}  # too early to tell

    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        found = assistance_sweep()
    assert found["requests"] == [AssistanceRequest.objects.get(uuid=lost).pk]
    assert found["webhooks"] == [webhook.pk]
    assert AssistanceWebhook.objects.get().status == "pending"


def test_a_worker_killed_during_the_call_leaves_a_numbered_attempt_no_gap(
    org, receiver, monkeypatch
):
    import chat.assistance as assistance
    import chat.assistance.webhooks as webhooks
    from chat.assistance import assistance_sweep

    url, handler = receiver
    handler.fail_first = 0
    make_topic(org, webhook_url=url, webhook_secret="s")
    rid = bot_client(org).post("/assistance/", {"topic": "sales"}, format="json").json()["id"]
    assistance_request_route(request_id=AssistanceRequest.objects.get(uuid=rid).pk)
    webhook = AssistanceWebhook.objects.get()

    # given a worker that dies during the HTTP call (after the claim)
    class Killed(BaseException):
        pass

    def die(**_: Any) -> None:
        raise Killed

    monkeypatch.setattr(webhooks, "webhook_post", die)
    with pytest.raises(Killed):
        assistance_webhook_deliver(webhook_id=webhook.pk)
    monkeypatch.undo()
    # then its attempt is already recorded, numbered, and says it has no outcome
    assert list(webhook.attempt_rows.values_list("number", "error")) == [
        (1, assistance.ATTEMPT_IN_FLIGHT)
    ]

    # when the sweeper reclaims it and a worker delivers it
    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        assert assistance_sweep()["webhooks"] == [webhook.pk]
    assert assistance_webhook_deliver(webhook_id=webhook.pk) == "sent"

    # then attempts are numbered 1, 2 with no gap, the lost one marked as such
    rows = list(webhook.attempt_rows.values_list("number", "status_code", "error"))
    assert rows == [(1, None, assistance.ATTEMPT_LOST), (2, 200, "")]
    webhook.refresh_from_db()
    assert (webhook.status, webhook.attempts) == ("sent", 2)


def test_accept_before_routing_still_opens_the_desk_announces_and_sends_the_webhook(
    org, make_agent, make_client, receiver, redis_client, django_capture_on_commit_callbacks
):
    url, handler = receiver
    handler.fail_first = 0
    ann, ben = make_agent("ann", org), make_agent("ben", org)
    make_topic(org, "sales", make_team(org, "t", ben), webhook_url=url)
    client = make_client(org)
    with django_capture_on_commit_callbacks(execute=True):
        rid = (
            bot_client(org)
            .post("/assistance/", {"topic": "sales", "phone": client.phone}, format="json")
            .json()["id"]
        )
    pk = AssistanceRequest.objects.get(uuid=rid).pk

    # when ann accepts it before the routing job ran
    with django_capture_on_commit_callbacks(execute=True):
        response = ann.client().post(f"/api/assistance/{rid}/accept/")
    assert response.status_code == 200, response.content

    # then it was routed to her on the way: help desk opened (and hers), announced first
    request = AssistanceRequest.objects.get(pk=pk)
    assert request.status == "accepted" and request.routed_at is not None
    assert request.assignee == ann.user and request.accepted_by == ann.user
    assert request.help_desk is not None and request.help_desk.client_id == client.pk
    assert HelpDesk.objects.get(pk=request.help_desk_id).assignee_id == ann.user.pk
    frames = [json.loads(fields[b"f"]) for _, fields in redis_client.xrange(log_key(org.pk))]
    mine = [f["type"] for f in frames if json.loads(f["data"]).get("id") == rid]
    assert mine == ["assistance_requested", "assistance_accepted"]
    assert sorted(AssistanceWebhook.objects.values_list("event_type", flat=True)) == [
        "assistance_accepted",
        "assistance_requested",
    ]

    # and the routing job, when it runs, does nothing more (no round-robin slot used)
    assistance_request_route(request_id=pk)
    assert AssistanceTopic.objects.get().rr_next == 0
    assert AssistanceWebhook.objects.count() == 2
    assert AssistanceRequest.objects.get(pk=pk).assignee == ann.user
