"""Chat admin: message status read-only, topic team inside the organization, the
webhook secret never shown."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from chat.models import AssistanceTopic, Message
from escalation.services import team_save

pytestmark = pytest.mark.django_db


def _topic_post(topic_org: Any, **fields: Any) -> dict[str, Any]:
    return {"organization": topic_org.pk, "name": "sales", "webhook_url": "", **fields}


def test_topic_team_must_be_of_the_topics_organization(staff, org, make_org):
    mine = team_save(organization=org, slug="sales-team")
    spy = team_save(organization=make_org("other"), slug="spy")
    add = reverse("admin:chat_assistancetopic_add")
    refused = staff.post(add, _topic_post(org, team=spy.pk))
    assert refused.status_code == 200 and b"A team of the topic" in refused.content
    assert not AssistanceTopic.objects.exists()

    assert staff.post(add, _topic_post(org, team=mine.pk)).status_code == 302
    topic = AssistanceTopic.objects.get()
    page = staff.get(reverse("admin:chat_assistancetopic_change", args=[topic.pk]))
    assert b"sales-team" in page.content and b"spy" not in page.content  # not offered


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

    staff.post(change, _topic_post(org, new_webhook_secret=""))  # blank keeps it
    topic.refresh_from_db()
    assert topic.webhook_secret == "s3cret-value"
    staff.post(change, _topic_post(org, clear_webhook_secret="on"))
    topic.refresh_from_db()
    assert topic.webhook_secret == ""


def test_message_status_is_read_only_in_admin(staff, help_desk, agent):
    message = Message.objects.create(
        help_desk=help_desk, message="hi", type="text", status="delivered"
    )
    change = reverse("admin:chat_message_change", args=[message.pk])
    page = staff.get(change)
    assert page.status_code == 200 and b'name="status"' not in page.content
    desk = staff.get(reverse("admin:chat_helpdesk_change", args=[help_desk.pk]))
    assert desk.status_code == 200 and b"hi" in desk.content
    assert b'name="messages-0-status"' not in desk.content  # inline too
    assert b'name="messages-0-message"' in desk.content  # (the inline row is there)
