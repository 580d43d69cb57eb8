"""Mailing admin: every page answers, writes go through the services, refusals are messages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client as HttpClient
from django.utils import timezone

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(org: Any, make_client: Any) -> dict[str, Any]:
    from mailing.services import mailing_create, mailing_materialize, template_create

    client = make_client(org)
    template = template_create(organization=org, title="T", code="t", body="Hi {{ name }}")
    now = timezone.now()
    running = mailing_create(
        organization=org, start_at=now, end_at=now + timedelta(hours=1), text="Hello"
    )
    from mailing.services import mailing_start

    mailing_start(mailing_id=running.pk)
    mailing_materialize(mailing_id=running.pk)
    running.refresh_from_db()
    assert running.status == "running"
    message = running.messages.get()
    return {"client": client, "template": template, "running": running, "message": message}


def _texts(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.mark.parametrize("model", ["template", "mailing", "mailingmessage"])
def test_changelist_and_pages_answer(staff: HttpClient, objects: Any, model: str) -> None:
    pk = {
        "template": objects["template"].pk,
        "mailing": objects["running"].pk,
        "mailingmessage": objects["message"].pk,
    }[model]
    assert staff.get(f"/admin/mailing/{model}/").status_code == 200
    assert staff.get(f"/admin/mailing/{model}/{pk}/change/").status_code == 200
    add = staff.get(f"/admin/mailing/{model}/add/").status_code
    # messages are read-only: written by dispatch only
    assert add == (403 if model == "mailingmessage" else 200)


def test_messages_are_read_only(staff: HttpClient, objects: Any) -> None:
    message = objects["message"]
    page = staff.get(f"/admin/mailing/mailingmessage/{message.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert staff.post(f"/admin/mailing/mailingmessage/{message.pk}/delete/").status_code == 403
    assert staff.post(f"/admin/mailing/mailingmessage/{message.pk}/change/", {}).status_code == 403


def test_deleting_a_running_mailing_is_an_error_message(staff: HttpClient, objects: Any) -> None:
    from mailing.models import Mailing

    running = objects["running"]
    response = staff.post(
        f"/admin/mailing/mailing/{running.pk}/delete/", {"post": "yes"}, follow=True
    )
    assert response.status_code == 200
    assert any("cancel it first" in t for t in _texts(response))
    assert Mailing.objects.filter(pk=running.pk).exists()


def test_bulk_delete_goes_through_the_service(staff: HttpClient, objects: Any, org: Any) -> None:
    from mailing.models import Mailing
    from mailing.services import mailing_create

    now = timezone.now()
    scheduled = mailing_create(
        organization=org,
        start_at=now + timedelta(hours=1),
        end_at=now + timedelta(hours=2),
        text="Later",
    )
    running = objects["running"]
    response = staff.post(
        "/admin/mailing/mailing/",
        {
            "action": "delete_selected",
            "post": "yes",
            "_selected_action": [running.pk, scheduled.pk],
        },
        follow=True,
    )
    assert response.status_code == 200
    texts = _texts(response)
    assert any("Deleted 1" in t for t in texts)
    assert any("cancel it first" in t for t in texts)
    assert list(Mailing.objects.values_list("pk", flat=True)) == [running.pk]


def test_changing_a_started_mailing_is_a_form_error(staff: HttpClient, objects: Any) -> None:
    from mailing.models import Mailing

    running = objects["running"]
    url = f"/admin/mailing/mailing/{running.pk}/change/"
    form = {
        "organization": running.organization_id,
        "name": running.name,
        "kind": running.kind,
        "start_at_0": running.start_at.strftime("%Y-%m-%d"),
        "start_at_1": running.start_at.strftime("%H:%M:%S"),
        "end_at_0": running.end_at.strftime("%Y-%m-%d"),
        "end_at_1": running.end_at.strftime("%H:%M:%S"),
        "text": "Changed text",
        "context": "{}",
        "operator_codes": "[]",
        "tags": "[]",
        "client_ids": "[]",
        "priority": 5,
    }
    response = staff.post(url, form)
    assert response.status_code == 200  # the form again, with the service's refusal on it
    assert "only name, priority and end_at" in response.content.decode()
    assert Mailing.objects.get(pk=running.pk).text == "Hello"


def test_deleting_a_used_template_is_an_error_message(staff: HttpClient, objects: Any) -> None:
    from mailing.models import Template
    from mailing.services import mailing_create

    template = objects["template"]
    now = timezone.now()
    mailing_create(
        organization=template.organization,
        start_at=now + timedelta(hours=1),
        end_at=now + timedelta(hours=2),
        template=template,
    )
    response = staff.post(
        "/admin/mailing/template/",
        {"action": "delete_selected", "post": "yes", "_selected_action": [template.pk]},
        follow=True,
    )
    # Its mailings protect it: Django's answer names them before the service is asked.
    assert response.status_code == 200
    assert "protected related objects" in response.content.decode()
    assert Template.objects.filter(pk=template.pk).exists()
    response = staff.post(f"/admin/mailing/template/{template.pk}/delete/", {"post": "yes"})
    assert response.status_code == 200 and Template.objects.filter(pk=template.pk).exists()


def test_adding_a_template_goes_through_the_service(staff: HttpClient, org: Any) -> None:
    from mailing.models import Template

    response = staff.post(
        "/admin/mailing/template/add/",
        {
            "organization": org.pk,
            "title": "Welcome",
            "code": "welcome",
            "body": "Hi {{ name }}",
            "transport": "sms",
            "variables": "[]",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert Template.objects.get(code="welcome").body == "Hi {{ name }}"
