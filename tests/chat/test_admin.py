"""Chat admin: clients, help desks and topics are written by the chat services (events
after commit, refusals as form errors); messages and assistance records are read-only;
the topic's team is of its organization and its webhook secret is never shown."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from chat.models import AssistanceTopic, Client, HelpDesk, Message
from core.models import Team
from tests.admin_events import published

pytestmark = pytest.mark.django_db


def _client_post(org: Any, **fields: Any) -> dict[str, Any]:
    return {
        "organization": org.pk,
        "name": "Ann",
        "phone": "79160000001",
        "operator_code": "916",
        "tag": "",
        "timezone": "UTC",
        **fields,
    }


def test_client_add_change_delete_go_through_the_services(
    staff, org, redis_client, django_capture_on_commit_callbacks
):
    # given a client added from the admin
    assert staff.post(reverse("admin:chat_client_add"), _client_post(org)).status_code == 302
    client = Client.objects.get()
    with published(django_capture_on_commit_callbacks, org.pk):
        desk = HelpDesk.objects.create(organization=org, client=client)  # (a fixture row)

    # when it is renamed: client_update publishes its help desks again (the client is nested)
    change = reverse("admin:chat_client_change", args=[client.pk])
    form = _client_post(org, name="Ann B.")
    form.pop("organization")  # read-only on change: a client does not move
    with published(django_capture_on_commit_callbacks, org.pk) as events:
        assert staff.post(change, form).status_code == 302
    assert events == ["update_helpdesk"]
    assert Client.objects.get().name == "Ann B."

    # when it is deleted: client_delete says its help desk is gone
    delete = reverse("admin:chat_client_delete", args=[client.pk])
    with published(django_capture_on_commit_callbacks, org.pk) as events:
        assert staff.post(delete, {"post": "yes"}).status_code == 302
    assert events == ["delete_helpdesk"]
    assert not Client.objects.exists() and not HelpDesk.objects.filter(pk=desk.pk).exists()


def test_client_bulk_delete_goes_through_the_service(
    staff, org, make_client, redis_client, django_capture_on_commit_callbacks
):
    from chat.services import help_desk_open

    clients = [make_client(org), make_client(org)]
    for client in clients:
        help_desk_open(client=client)
    changelist = reverse("admin:chat_client_changelist")
    selected = {"action": "delete_selected", "_selected_action": [c.pk for c in clients]}
    assert staff.post(changelist, selected).status_code == 200  # Django's confirmation page
    with published(django_capture_on_commit_callbacks, org.pk) as events:
        response = staff.post(changelist, {**selected, "post": "yes"})
    assert response.status_code == 302
    assert events == ["delete_helpdesk", "delete_helpdesk"]
    assert not Client.objects.exists()


def test_help_desk_add_and_change_publish_and_refusals_are_form_errors(
    staff,
    org,
    agent,
    make_client,
    make_org,
    make_agent,
    redis_client,
    django_capture_on_commit_callbacks,
):
    client = make_client(org)
    with published(django_capture_on_commit_callbacks, org.pk) as events:
        added = staff.post(reverse("admin:chat_helpdesk_add"), {"client": client.pk})
    assert added.status_code == 302 and events == ["update_helpdesk"]
    desk = HelpDesk.objects.get()

    # A second open help desk for the client: refused on the form, nothing written.
    again = staff.post(reverse("admin:chat_helpdesk_add"), {"client": client.pk})
    assert again.status_code == 200 and b"already has an open help desk" in again.content
    assert HelpDesk.objects.count() == 1

    # An agent of another organization: the service refuses it, on its field.
    stranger = make_agent("stranger", org=make_org("elsewhere"))
    change = reverse("admin:chat_helpdesk_change", args=[desk.pk])
    inline = {
        "messages-TOTAL_FORMS": "0",
        "messages-INITIAL_FORMS": "0",
        "messages-MIN_NUM_FORMS": "0",
        "messages-MAX_NUM_FORMS": "1000",
    }
    with published(django_capture_on_commit_callbacks, org.pk) as events:
        refused = staff.post(change, {"status": "open", "assignee": stranger.user.pk, **inline})
    assert refused.status_code == 200 and events == []
    assert b"Not an agent of this organization." in refused.content
    assert b'class="errorlist' in refused.content
    desk.refresh_from_db()
    assert desk.assignee is None

    with published(django_capture_on_commit_callbacks, org.pk) as events:
        ok = staff.post(change, {"status": "resolved", "assignee": agent.user.pk, **inline})
    assert ok.status_code == 302 and events == ["update_helpdesk"]
    desk.refresh_from_db()
    assert (desk.status, desk.assignee) == ("resolved", agent.user)


def _topic_post(topic_org: Any, **fields: Any) -> dict[str, Any]:
    return {"organization": topic_org.pk, "name": "sales", "webhook_url": "", **fields}


def test_topic_team_must_be_of_the_topics_organization(staff, org, make_org):
    mine = Team.objects.create(organization=org, slug="sales-team", name="Sales")
    spy = Team.objects.create(organization=make_org("other"), slug="spy", name="Spy")
    add = reverse("admin:chat_assistancetopic_add")
    refused = staff.post(add, _topic_post(org, team=spy.pk))
    assert refused.status_code == 200 and b"A team of the topic" in refused.content
    assert not AssistanceTopic.objects.exists()

    assert staff.post(add, _topic_post(org, team=mine.pk)).status_code == 302
    topic = AssistanceTopic.objects.get()
    assert topic.team == mine
    page = staff.get(reverse("admin:chat_assistancetopic_change", args=[topic.pk]))
    assert b"sales-team" in page.content and b"spy" not in page.content  # not offered


def test_topic_webhook_url_is_checked_by_the_service(staff, org):
    add = reverse("admin:chat_assistancetopic_add")
    refused = staff.post(add, _topic_post(org, webhook_url="http://127.0.0.1/hook"))
    assert refused.status_code == 200 and b"errorlist" in refused.content
    assert not AssistanceTopic.objects.exists()


def test_webhook_secret_is_write_only(staff, org):
    add = reverse("admin:chat_assistancetopic_add")
    staff.post(add, _topic_post(org, new_webhook_secret="s3cret-value"))
    topic = AssistanceTopic.objects.get()
    assert topic.webhook_secret == "s3cret-value"
    change = reverse("admin:chat_assistancetopic_change", args=[topic.pk])
    assert b"s3cret-value" not in staff.get(change).content
    assert (
        b"s3cret-value" not in staff.get(reverse("admin:chat_assistancetopic_changelist")).content
    )

    staff.post(change, {"name": "sales", "webhook_url": "", "new_webhook_secret": ""})
    topic.refresh_from_db()
    assert topic.webhook_secret == "s3cret-value"  # blank keeps it
    staff.post(change, {"name": "sales", "webhook_url": "", "clear_webhook_secret": "on"})
    topic.refresh_from_db()
    assert topic.webhook_secret == ""


@pytest.mark.parametrize(
    "model", ["message", "assistancerequest", "assistancewebhook", "assistancewebhookattempt"]
)
def test_rows_the_product_writes_are_read_only(staff, model):
    changelist = staff.get(reverse(f"admin:chat_{model}_changelist"))
    assert changelist.status_code == 200
    assert b'value="delete_selected"' not in changelist.content
    assert staff.get(reverse(f"admin:chat_{model}_add")).status_code == 403


def test_messages_cannot_be_changed_only_deleted_through_the_service(
    staff, help_desk, django_capture_on_commit_callbacks
):
    earlier = Message.objects.create(help_desk=help_desk, message="first", type="received")
    message = Message.objects.create(
        help_desk=help_desk, message="hi", type="received", status="delivered"
    )
    help_desk.last_message = message
    help_desk.save()
    change = reverse("admin:chat_message_change", args=[message.pk])
    page = staff.get(change)
    assert page.status_code == 200 and b'name="status"' not in page.content
    assert b'name="_save"' not in page.content
    assert staff.post(change, {"message": "edited"}).status_code == 403
    assert staff.get(reverse("admin:chat_message_add")).status_code == 403
    desk = staff.get(reverse("admin:chat_helpdesk_change", args=[help_desk.pk]))
    assert desk.status_code == 200 and b"hi" in desk.content  # shown on its help desk
    assert b'name="messages-0-message"' not in desk.content  # never edited there
    message.refresh_from_db()
    assert message.message == "hi"
    # a moderator's delete goes through chat.services.message_delete: the help desk's
    # last message falls back to the one before, and agents get the updated desk
    delete = reverse("admin:chat_message_delete", args=[message.pk])
    with published(django_capture_on_commit_callbacks, help_desk.organization_id) as types:
        assert staff.post(delete, {"post": "yes"}).status_code == 302
    assert not Message.objects.filter(pk=message.pk).exists()
    help_desk.refresh_from_db()
    assert help_desk.last_message_id == earlier.pk
    assert types == ["update_helpdesk"]
