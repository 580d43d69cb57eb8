"""The chat REST API through the in-process DRF client: shapes, ordering, pagination, CRUD."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from chat.models import HelpDesk, Message
from core.events import log_key
from tests.conftest import METRICS_AUTH

pytestmark = pytest.mark.django_db

MESSAGE_FIELDS = [
    "created_at",
    "updated_at",
    "uuid",
    "message",
    "file",
    "type",
    "status",
    "help_desk",
    "sender",  # beyond the seed (which had one agent): who wrote an outgoing message
    "file_name",  # beyond the seed: `file` is the download view, this the uploaded name
]


def _next_link(response: Any) -> str | None:
    match = re.search(r'<([^>]+)>;\s*rel="next"', response.headers.get("Link", ""))
    return match.group(1) if match else None


def _walk(api: Any, url: str) -> tuple[list[dict[str, Any]], int]:
    """Follow rel="next" to the end: (all items, number of pages)."""
    items: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    while next_url is not None:
        response = api.get(next_url)
        assert response.status_code == 200, response.content
        assert isinstance(response.json(), list)  # the seed's plain array body
        items.extend(response.json())
        pages += 1
        next_url = _next_link(response)
    return items, pages


def _send(api: Any, help_desk: Any, text: str = "hi", **extra: Any) -> Any:
    return api.post(
        "/api/send-message/", {"help_desk": str(help_desk.uuid), "message": text, **extra}
    )


def _inbound(api: Any, phone: str, text: str, **extra: Any) -> Any:
    return api.post(
        "/api/inbound-message/", {"phone": phone, "message": text, **extra}, format="json"
    )


# --- seed shapes ------------------------------------------------------------------------


def test_help_desk_list_has_seed_shape_with_nested_client_and_last_message(agent, help_desk):
    api = agent.client()
    sent = _send(api, help_desk, "hello")
    assert sent.status_code == 201, sent.content

    response = api.get("/api/help-desks/", {"organization": "acme"})

    assert response.status_code == 200
    [desk] = response.json()
    for field in ("created_at", "updated_at", "uuid", "client", "last_message"):
        assert field in desk
    assert desk["uuid"] == str(help_desk.uuid)
    assert {"uuid", "created_at", "updated_at", "name", "phone"} <= set(desk["client"])
    assert desk["client"]["phone"] == help_desk.client.phone
    assert list(desk["last_message"]) == MESSAGE_FIELDS
    assert desk["last_message"]["message"] == "hello"
    assert desk["last_message"]["help_desk"] == str(help_desk.uuid)
    assert desk["last_message"]["type"] == "sent"
    assert desk["last_message"]["status"] == "sending"


def test_message_has_exactly_the_seed_fields(agent, help_desk):
    response = _send(agent.client(), help_desk, "teste")

    assert response.status_code == 201
    body = response.json()
    assert list(body) == MESSAGE_FIELDS
    assert body["file"] is None
    assert body["type"] == "sent"
    assert body["status"] == "sending"
    assert body["help_desk"] == str(help_desk.uuid)
    uuid.UUID(body["uuid"])


def test_new_help_desk_has_null_last_message(agent, help_desk):
    [desk] = agent.client().get("/api/help-desks/?organization=acme").json()
    assert desk["last_message"] is None
    assert desk["unread_count"] == 0


# --- ordering and pagination ------------------------------------------------------------


def test_help_desks_follow_link_header_through_pages_without_loss_or_repeat(
    agent, org, make_client
):
    # given 7 help desks, the oldest touched last
    from chat.services import help_desk_open

    desks = [help_desk_open(client=make_client(org))[0] for _ in range(7)]
    api = agent.client()
    assert _send(api, desks[0], "bump").status_code == 201

    # when walking pages of 2
    items, pages = _walk(api, "/api/help-desks/?organization=acme&page_size=2")

    # then every desk appears once, newest activity first
    assert pages == 4
    uuids = [d["uuid"] for d in items]
    assert len(uuids) == len(set(uuids)) == 7
    assert uuids[0] == str(desks[0].uuid)
    assert uuids[1:] == [str(d.uuid) for d in reversed(desks[1:])]
    times = [d["last_activity_at"] for d in items]
    assert times == sorted(times, reverse=True)


def test_pagination_is_stable_when_a_desk_moves_to_the_top_mid_walk(agent, org, make_client):
    from chat.services import help_desk_open

    desks = [help_desk_open(client=make_client(org))[0] for _ in range(5)]
    api = agent.client()
    first = api.get("/api/help-desks/?organization=acme&page_size=2")
    seen = [d["uuid"] for d in first.json()]
    # activity on a desk not yet seen moves it to the top, behind the cursor
    assert _send(api, desks[0], "bump").status_code == 201
    rest, _ = _walk(api, _next_link(first) or "")
    seen += [d["uuid"] for d in rest]
    assert len(seen) == len(set(seen))  # nothing repeated


@pytest.mark.parametrize("page_size", ["100000", "0", "-1", "abc", ""])
def test_out_of_range_or_garbage_page_size_falls_back(agent, help_desk, page_size):
    response = agent.client().get(f"/api/help-desks/?organization=acme&page_size={page_size}")
    assert response.status_code == 200
    assert [d["uuid"] for d in response.json()] == [str(help_desk.uuid)]


def test_history_is_newest_first_and_paginated(agent, help_desk):
    api = agent.client()
    for n in range(5):
        assert _send(api, help_desk, f"m{n}").status_code == 201

    items, pages = _walk(api, f"/api/help-desks/{help_desk.uuid}/history/?page_size=2")

    assert pages == 3
    assert [m["message"] for m in items] == ["m4", "m3", "m2", "m1", "m0"]
    assert all(list(m) == MESSAGE_FIELDS for m in items)


def test_help_desk_list_without_organization_lists_all_of_mine(
    agent, help_desk, make_org, make_client
):
    from chat.services import help_desk_open
    from core.services import membership_add

    other = make_org("beta")
    membership_add(organization=other, user=agent.user)
    help_desk_open(client=make_client(other))

    everything = agent.client().get("/api/help-desks/").json()
    only_beta = agent.client().get("/api/help-desks/?organization=beta").json()

    assert {d["organization"] for d in everything} == {"acme", "beta"}
    assert [d["organization"] for d in only_beta] == ["beta"]


# --- sending ------------------------------------------------------------------------------


@pytest.fixture
def media_cleanup(settings, tmp_path):
    """Uploads go to a MEDIA_ROOT of the test's own."""
    settings.MEDIA_ROOT = str(tmp_path / "media")


def test_send_message_with_file_stores_it_and_serves_its_url(agent, help_desk, media_cleanup):
    upload = SimpleUploadedFile("note.txt", b"file body", content_type="text/plain")

    response = agent.client().post(
        "/api/send-message/",
        {"help_desk": str(help_desk.uuid), "message": "see file", "file": upload},
        format="multipart",
    )

    assert response.status_code == 201, response.content
    url = response.json()["file"]
    # The authorized download view (tests/chat/test_files.py tries it as an attacker).
    assert url == f"/api/messages/{response.json()['uuid']}/file/"
    assert response.json()["file_name"] == "note.txt"
    served = agent.client().get(url)
    assert served.status_code == 200
    assert served["Content-Disposition"] == 'attachment; filename="note.txt"'
    assert async_to_sync(_body)(served) == b"file body"
    message = Message.objects.get(uuid=response.json()["uuid"])
    assert message.delivery is not None
    # The sender carries text only: a signed link to the file goes along.
    assert f"{settings.PUBLIC_BASE_URL}/api/files/" in message.delivery.text


async def _body(response: Any) -> bytes:
    # Files stream asynchronously (served by daphne): read them the same way here.
    return b"".join([part async for part in response])


def test_send_message_with_only_a_file(agent, help_desk, media_cleanup):
    upload = SimpleUploadedFile("a.png", b"\x89PNG....", content_type="image/png")
    response = agent.client().post(
        "/api/send-message/", {"help_desk": str(help_desk.uuid), "file": upload}
    )
    assert response.status_code == 201, response.content
    assert response.json()["message"] == ""


def test_send_message_creates_delivery_and_enqueues_after_commit(
    agent, help_desk, django_capture_on_commit_callbacks, redis_client
):
    from core.jobs import get_queue

    queue = get_queue("chat")
    queue.empty()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _send(agent.client(), help_desk, "queued")
    assert response.status_code == 201
    assert queue.count == 0  # nothing before commit

    for callback in callbacks:
        callback()

    message = Message.objects.get(uuid=response.json()["uuid"])
    [job] = queue.jobs
    assert job.func_name == "chat.jobs.message_deliver"
    assert job.args == (message.pk,)
    queue.empty()


# --- help desk CRUD -------------------------------------------------------------------------


def test_post_help_desk_opens_then_reuses(agent, org, make_client):
    client = make_client(org)
    api = agent.client()

    first = api.post("/api/help-desks/", {"client": str(client.uuid)}, format="json")
    again = api.post("/api/help-desks/", {"client": str(client.uuid)}, format="json")

    assert first.status_code == 201, first.content
    assert again.status_code == 200
    assert first.json()["uuid"] == again.json()["uuid"]
    assert first.json()["client"]["uuid"] == str(client.uuid)
    assert HelpDesk.objects.filter(client=client).count() == 1


def test_post_help_desk_after_close_opens_a_new_one(agent, help_desk):
    api = agent.client()
    closed = api.patch(f"/api/help-desks/{help_desk.uuid}/", {"status": "closed"}, format="json")
    assert closed.status_code == 200

    response = api.post("/api/help-desks/", {"client": str(help_desk.client.uuid)}, format="json")

    assert response.status_code == 201
    assert response.json()["uuid"] != str(help_desk.uuid)


def test_patch_help_desk_status_and_assignee(agent, make_agent, help_desk):
    bob = make_agent("bob", agent.organization, role="agent")
    api = agent.client()

    response = api.patch(
        f"/api/help-desks/{help_desk.uuid}/", {"status": "closed", "assignee": "bob"}, format="json"
    )

    assert response.status_code == 200, response.content
    # `closed` is the deprecated alias of `resolved` (issue 13's workflow)
    assert response.json()["status"] == "resolved"
    assert response.json()["assignee"] == "bob"
    help_desk.refresh_from_db()
    assert help_desk.assignee == bob.user
    assert help_desk.status == "resolved"

    cleared = api.patch(f"/api/help-desks/{help_desk.uuid}/", {"assignee": None}, format="json")
    assert cleared.status_code == 200
    assert cleared.json()["assignee"] is None


def test_patch_assignee_outside_organization_is_400(agent, make_agent, make_org, help_desk):
    make_agent("eve", make_org("other"))
    response = agent.client().patch(
        f"/api/help-desks/{help_desk.uuid}/", {"assignee": "eve"}, format="json"
    )
    assert response.status_code == 400
    assert "assignee" in response.json()["error"]["fields"]
    help_desk.refresh_from_db()
    assert help_desk.assignee is None


def test_patch_bad_status_is_400(agent, help_desk):
    response = agent.client().patch(
        f"/api/help-desks/{help_desk.uuid}/", {"status": "archived"}, format="json"
    )
    assert response.status_code == 400
    assert "status" in response.json()["error"]["fields"]


def test_get_and_delete_help_desk(agent, help_desk):
    api = agent.client()
    assert api.get(f"/api/help-desks/{help_desk.uuid}/").json()["uuid"] == str(help_desk.uuid)

    assert api.delete(f"/api/help-desks/{help_desk.uuid}/").status_code == 204

    assert not HelpDesk.objects.filter(pk=help_desk.pk).exists()
    assert api.get(f"/api/help-desks/{help_desk.uuid}/").status_code == 404


def test_mark_read_resets_unread_count(agent, help_desk):
    api = agent.client()
    for text in ("a", "b"):
        assert _inbound(api, help_desk.client.phone, text, organization="acme").status_code == 201
    assert api.get(f"/api/help-desks/{help_desk.uuid}/").json()["unread_count"] == 2

    response = api.post(f"/api/help-desks/{help_desk.uuid}/read/")

    assert response.status_code == 200
    assert response.json()["unread_count"] == 0
    assert api.get(f"/api/help-desks/{help_desk.uuid}/").json()["unread_count"] == 0


# --- inbound ------------------------------------------------------------------------------


def test_inbound_with_agent_key_creates_client_and_help_desk(agent):
    response = _inbound(agent.client(), "79161234567", "hello?", organization="acme", name="Ann")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["type"] == "received"
    assert body["message"] == "hello?"
    desk = HelpDesk.objects.select_related("client").get(uuid=body["help_desk"])
    assert desk.client.phone == "79161234567"
    assert desk.client.name == "Ann"
    assert desk.client.operator_code == "916"
    assert desk.received_count == 1


def test_inbound_with_agent_key_requires_organization(agent):
    response = _inbound(agent.client(), "79161234567", "hi")
    assert response.status_code == 400
    assert "organization" in response.json()["error"]["fields"]
    assert not Message.objects.exists()


def test_inbound_with_integration_key_uses_its_organization(org):
    from core.services import api_key_create

    _, raw = api_key_create(name="bot", organization=org)
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    response = _inbound(api, "79991112233", "from the channel")

    assert response.status_code == 201, response.content
    desk = HelpDesk.objects.get(uuid=response.json()["help_desk"])
    assert desk.organization == org


def test_inbound_increments_unread_and_moves_help_desk_to_top(agent, org, make_client):
    from chat.services import help_desk_open

    old, _ = help_desk_open(client=make_client(org))
    _newer, _ = help_desk_open(client=make_client(org))
    api = agent.client()
    assert api.get("/api/help-desks/?organization=acme").json()[0]["uuid"] != str(old.uuid)

    for text in ("one", "two"):
        assert _inbound(api, old.client.phone, text, organization="acme").status_code == 201

    top = api.get("/api/help-desks/?organization=acme").json()[0]
    assert top["uuid"] == str(old.uuid)
    assert top["unread_count"] == 2
    assert top["last_message"]["message"] == "two"
    assert top["last_message"]["type"] == "received"
    assert HelpDesk.objects.filter(client=old.client).count() == 1


# --- receipts and retry --------------------------------------------------------------------


def _receipt(api: Any, message_uuid: str, status: str) -> Any:
    return api.post(f"/api/messages/{message_uuid}/receipts/", {"status": status}, format="json")


def test_receipts_move_forward_only(agent, help_desk):
    api = agent.client()
    message = _send(api, help_desk).json()["uuid"]

    steps = [
        ("sent", True, "sent"),
        ("delivered", True, "delivered"),
        ("delivered", False, "delivered"),  # repeated: ignored
        ("read", True, "read"),
        ("delivered", False, "read"),  # late: ignored, never downgraded
        ("sent", False, "read"),
        ("failed", False, "read"),
    ]
    for requested, applied, after in steps:
        response = _receipt(api, message, requested)
        assert response.status_code == 200, response.content
        assert response.json()["applied"] is applied, requested
        assert response.json()["message"]["status"] == after, requested
    assert Message.objects.get(uuid=message).status == "read"


def test_read_then_delivered_is_ignored(agent, help_desk):
    api = agent.client()
    message = _send(api, help_desk).json()["uuid"]
    assert _receipt(api, message, "read").json()["applied"] is True

    response = _receipt(api, message, "delivered")

    assert response.json() == {"applied": False, "message": response.json()["message"]}
    assert response.json()["message"]["status"] == "read"


def test_receipt_publishes_update_message_after_commit(
    agent, help_desk, django_capture_on_commit_callbacks
):
    api = agent.client()
    message = _send(api, help_desk).json()["uuid"]
    from core.redis import get_redis

    stream = log_key(help_desk.organization_id)
    before = get_redis().xlen(stream)
    with django_capture_on_commit_callbacks(execute=True):
        _receipt(api, message, "delivered")
    published = [json.loads(f[b"f"])["type"] for _, f in get_redis().xrange(stream)][before:]
    # the message, then its help desk (which shows it nested as `last_message`)
    assert published == ["update_message", "update_helpdesk"]
    with django_capture_on_commit_callbacks() as ignored:
        _receipt(api, message, "sent")
    assert ignored == []


def test_receipt_bad_status_is_400(agent, help_desk):
    api = agent.client()
    message = _send(api, help_desk).json()["uuid"]
    for status in ("sending", "bogus", ""):
        response = _receipt(api, message, status)
        assert response.status_code == 400
        assert "status" in response.json()["error"]["fields"]


def test_retry_of_failed_message_starts_a_new_delivery(agent, help_desk):
    api = agent.client()
    body = _send(api, help_desk).json()
    first_delivery = Message.objects.get(uuid=body["uuid"]).delivery_id
    assert _receipt(api, body["uuid"], "failed").json()["applied"] is True

    response = api.post(f"/api/messages/{body['uuid']}/retry/")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "sending"
    message = Message.objects.get(uuid=body["uuid"])
    assert message.delivery_id not in (None, first_delivery)


def test_messages_name_their_sender(agent, help_desk):
    api = agent.client()
    _send(api, help_desk)
    from chat.services import message_receive

    message_receive(organization=agent.organization, phone=help_desk.client.phone, text="hi")
    history = api.get(f"/api/help-desks/{help_desk.uuid}/history/").json()
    assert [(m["type"], m["sender"]) for m in history] == [("received", None), ("sent", "alice")]


def test_retry_while_the_first_delivery_is_still_tried_is_409(agent, help_desk):
    from core.models import Delivery

    # given a `failed` receipt for a message whose call to the sender is under way
    api = agent.client()
    body = _send(api, help_desk).json()
    first_delivery = Message.objects.get(uuid=body["uuid"]).delivery_id
    Delivery.objects.filter(pk=first_delivery).update(status="sending")  # a worker claimed it
    assert _receipt(api, body["uuid"], "failed").json()["applied"] is True

    # when the agent retries, then it is refused: a new chain could deliver it twice
    response = api.post(f"/api/messages/{body['uuid']}/retry/")
    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == "delivery_in_progress"
    assert Message.objects.get(uuid=body["uuid"]).delivery_id == first_delivery


def test_retry_of_non_failed_message_is_409(agent, help_desk):
    api = agent.client()
    body = _send(api, help_desk).json()
    response = api.post(f"/api/messages/{body['uuid']}/retry/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_retryable"


# --- platform endpoints ----------------------------------------------------------------------


def test_schema_and_docs_answer(agent, client):
    schema = agent.client().get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/send-message/" in schema.content
    assert agent.client().get("/docs/").status_code == 200


def test_schema_validates_without_warnings():
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_health_and_metrics(client, redis_client):
    health = client.get("/health/")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok", "redis": "ok"}
    metrics = client.get("/metrics", headers=METRICS_AUTH)
    assert metrics.status_code == 200
    assert b"events_published_total" in metrics.content


def test_organizations_lists_mine(agent, make_org):
    make_org("other")
    assert agent.client().get("/api/organizations/").json() == [
        {"slug": "acme", "name": "Acme", "role": "admin"}
    ]
