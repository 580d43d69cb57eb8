"""Events are published by services after commit, as JSON strings of the REST objects."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from django.db import transaction

from chat import clients, services
from chat.models import Message
from chat.representations import HelpDeskSerializer, MessageSerializer
from core.events import _keys, log_key, seq_key

pytestmark = pytest.mark.django_db


def _logged(organization_id: int) -> list[dict[str, Any]]:
    """Every frame in the organization's event log, oldest first."""
    from core.redis import get_redis

    entries = get_redis().xrange(log_key(organization_id))
    return [json.loads(fields[b"f"]) for _, fields in entries]


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks: Any) -> Any:
    """Run on-commit callbacks as the (test-wrapped) transaction would on commit."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture(autouse=True)
def _clean_event_log(redis_client: Any, org: Any) -> None:
    redis_client.delete(*_keys(org.pk)[:3])


def test_rolled_back_transaction_publishes_nothing(org, help_desk, agent, redis_client):
    # given a help desk whose opening event is already out
    from core.jobs import get_queue

    before = redis_client.get(seq_key(org.pk))
    queued = get_queue("chat").count

    # when a message is created in a transaction that rolls back
    with pytest.raises(RuntimeError), transaction.atomic():
        services.message_create(help_desk=help_desk, text="never", sender=agent.user)
        raise RuntimeError("rollback")

    # then nothing was published or enqueued, and nothing was stored
    assert redis_client.get(seq_key(org.pk)) == before
    assert get_queue("chat").count == queued
    assert not Message.objects.exists()


def test_message_create_publishes_new_message_then_update_helpdesk_after_commit(
    org, help_desk, agent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        message = services.message_create(help_desk=help_desk, text="hello", sender=agent.user)
    assert _logged(org.pk) == []  # nothing before commit

    for callback in callbacks:
        callback()

    frames = _logged(org.pk)
    assert [f["type"] for f in frames] == ["new_message", "update_helpdesk"]
    # Appended together (one script call, core.events.publish_many_on_commit).
    assert frames[1]["id"] == frames[0]["id"] + 1
    assert isinstance(frames[0]["data"], str)  # the seed's JSON string, not an object
    message.refresh_from_db()
    help_desk.refresh_from_db()
    assert json.loads(frames[0]["data"]) == json.loads(
        json.dumps(MessageSerializer(message).data, default=str)
    )
    desk = json.loads(frames[1]["data"])
    assert desk["uuid"] == str(help_desk.uuid)
    assert desk["last_message"]["uuid"] == str(message.uuid)
    assert set(desk) == set(HelpDeskSerializer(help_desk).data)


def test_payloads_round_trip_through_msgpack(org, help_desk, agent, run_on_commit):
    with run_on_commit():
        message = services.message_create(help_desk=help_desk, text="x", sender=agent.user)
        services.message_status_apply(message=message, status="delivered")
        services.message_receive(organization=org, phone=help_desk.client.phone, text="back")

    frames = _logged(org.pk)
    assert {f["type"] for f in frames} >= {"new_message", "update_helpdesk", "update_message"}
    for frame in frames:
        assert msgpack.unpackb(msgpack.packb(frame)) == frame
        payload = json.loads(frame["data"])
        assert msgpack.unpackb(msgpack.packb(payload)) == payload


def test_ignored_status_receipt_publishes_nothing(org, help_desk, agent, run_on_commit):
    with run_on_commit():
        message = services.message_create(help_desk=help_desk, text="x", sender=agent.user)
        services.message_status_apply(message=message, status="read")
    count = len(_logged(org.pk))

    with run_on_commit():
        assert services.message_status_apply(message=message, status="delivered") is False

    assert len(_logged(org.pk)) == count


def test_inbound_publishes_new_message_and_update_helpdesk(org, help_desk, run_on_commit):
    with run_on_commit():
        services.message_receive(organization=org, phone=help_desk.client.phone, text="hi")

    frames = _logged(org.pk)
    assert [f["type"] for f in frames] == ["new_message", "update_helpdesk"]
    assert json.loads(frames[0]["data"])["type"] == "received"
    # unread counts are per agent (chat/reads.py): an event, sent to all, carries none
    assert json.loads(frames[1]["data"])["unread_count"] is None


def test_events_are_per_organization(org, help_desk, agent, make_org, make_client, run_on_commit):
    other = make_org("other")
    with run_on_commit():
        services.help_desk_open(client=make_client(other))
        services.message_create(help_desk=help_desk, text="acme only", sender=agent.user)

    assert all("acme only" not in f["data"] for f in _logged(other.pk))
    assert any("acme only" in f["data"] for f in _logged(org.pk))


def test_help_desk_changes_publish_update_helpdesk(org, help_desk, agent, run_on_commit):
    api = agent.client()
    with run_on_commit():
        api.patch(f"/api/help-desks/{help_desk.uuid}/", {"status": "closed"}, format="json")
        services.message_receive(organization=org, phone=help_desk.client.phone, text="hi")
        api.post(f"/api/help-desks/{help_desk.uuid}/read/")

    desks = [json.loads(f["data"]) for f in _logged(org.pk) if f["type"] == "update_helpdesk"]
    assert (desks[0]["uuid"], desks[0]["status"]) == (str(help_desk.uuid), "resolved")
    # the closed desk was not reused: the inbound message opened (then touched) a new one
    assert {d["uuid"] for d in desks[1:]} == {desks[-1]["uuid"]} != {str(help_desk.uuid)}
    assert desks[-1]["unread_count"] is None  # per agent: not in a broadcast event
    # marking the old desk read changed nothing (nothing unread there): no event
    assert [d["uuid"] for d in desks].count(str(help_desk.uuid)) == 1
    assert not [f for f in _logged(org.pk) if f["type"] == "help_desk_read"]


def test_status_change_of_the_last_message_updates_its_help_desk(
    org, help_desk, agent, run_on_commit
):
    with run_on_commit():
        message = services.message_create(help_desk=help_desk, text="x", sender=agent.user)
    count = len(_logged(org.pk))

    with run_on_commit():
        services.message_status_apply(message=message, status="sent")

    frames = _logged(org.pk)[count:]
    assert [f["type"] for f in frames] == ["update_message", "update_helpdesk"]
    assert json.loads(frames[1]["data"])["last_message"]["status"] == "sent"


def test_status_change_of_an_older_message_leaves_the_help_desk_alone(
    org, help_desk, agent, run_on_commit
):
    with run_on_commit():
        older = services.message_create(help_desk=help_desk, text="old", sender=agent.user)
        services.message_create(help_desk=help_desk, text="new", sender=agent.user)
    count = len(_logged(org.pk))

    with run_on_commit():
        services.message_status_apply(message=older, status="sent")

    assert [f["type"] for f in _logged(org.pk)[count:]] == ["update_message"]


def test_client_changes_reach_its_help_desks(org, help_desk, agent, run_on_commit):
    client = help_desk.client
    with run_on_commit():
        clients.client_update(client=client, data={"name": "Renamed"})
    [frame] = [f for f in _logged(org.pk) if f["type"] == "update_helpdesk"][-1:]
    assert json.loads(frame["data"])["client"]["name"] == "Renamed"

    with run_on_commit():
        clients.client_delete(client=client)
    last = _logged(org.pk)[-1]
    assert last["type"] == "delete_helpdesk"
    assert json.loads(last["data"]) == {"uuid": str(help_desk.uuid), "client": str(client.uuid)}


def test_help_desk_delete_publishes_delete_helpdesk(org, help_desk, agent, run_on_commit):
    with run_on_commit():
        response = agent.client().delete(f"/api/help-desks/{help_desk.uuid}/")
    assert response.status_code == 204, response.content
    last = _logged(org.pk)[-1]
    assert (last["type"], json.loads(last["data"])["uuid"]) == (
        "delete_helpdesk",
        str(help_desk.uuid),
    )


def test_operator_code_rule_holds_outside_the_api_too(org):
    from django.core.exceptions import ValidationError

    from chat.models import Client

    client = Client(organization=org, name="x", phone="79161234567", operator_code="999")
    with pytest.raises(ValidationError) as caught:
        client.full_clean()
    assert "operator_code" in caught.value.message_dict


def test_inbound_message_reads_its_desk_once_and_publishes_what_is_stored(
    org, make_client, agent, django_capture_on_commit_callbacks
):
    """A client writes into its snoozed, assigned desk: the desk is read once, under its
    row lock, and not read back after its update (help_desk_touch(locked=True)); the
    published desk is still exactly what the database then holds."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from chat.models import HelpDesk
    from chat.visitors import visitor_message_receive

    client = make_client(org)
    desk, _ = services.help_desk_open(client=client)
    services.message_receive(organization=org, phone=client.phone, text="first")
    HelpDesk.objects.filter(pk=desk.pk).update(
        status=HelpDesk.Status.SNOOZED,
        snoozed_until=timezone.now() + timezone.timedelta(hours=1),
        assignee=agent.user,
    )
    client.refresh_from_db()

    with (
        django_capture_on_commit_callbacks(execute=True),
        CaptureQueriesContext(connection) as captured,
    ):
        message = visitor_message_receive(client=client, text="second")

    reads = [q["sql"] for q in captured if q["sql"].startswith("SELECT")]
    assert len(reads) == 1 and ' FROM "chat_helpdesk"' in reads[0], reads
    published = json.loads(_logged(org.pk)[-1]["data"])
    stored = HelpDesk.objects.select_related("client", "assignee", "last_message").get(pk=desk.pk)
    assert stored.received_count == 2 and stored.status == HelpDesk.Status.OPEN
    assert stored.snoozed_until is None and stored.last_message_id == message.pk
    assert published == json.loads(json.dumps(HelpDeskSerializer(stored).data, default=str))
