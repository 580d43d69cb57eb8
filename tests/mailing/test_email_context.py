"""Context providers chosen by the template's code, and the preview API that renders a real
client exactly as a mailing would."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db

MONTHLY = (
    "{{ name }}: {{ conversations }} conversations, {{ messages }} messages, "
    "last {{ last_contact }}, {{ mailings_received }} mailings"
)


def _history(org: Any, client: Any) -> None:
    """This month: 2 help desks with 3 messages; last month: 1 help desk with 1 message
    (not counted); one mailing message sent to the client this month."""
    from chat.models import HelpDesk, Message
    from core.models import Delivery
    from mailing.models import Mailing, MailingMessage

    now = timezone.now()
    long_ago = now.replace(day=1) - timedelta(days=3)
    old = HelpDesk.objects.create(organization=org, client=client)
    Message.objects.create(help_desk=old, message="old", type="received")
    HelpDesk.objects.filter(pk=old.pk).update(created_at=long_ago)
    Message.objects.filter(help_desk=old).update(created_at=long_ago)
    for n in (1, 2):
        desk = HelpDesk.objects.create(organization=org, client=client)
        for i in range(n):
            Message.objects.create(help_desk=desk, message=f"m{i}", type="received")
    mailing = Mailing.objects.create(
        organization=org, start_at=now, end_at=now + timedelta(hours=1), text="x"
    )
    delivery = Delivery.objects.create(
        organization=org, source="mailing", phone=1, text="x", status="sent", sent_at=now
    )
    MailingMessage.objects.create(delivery=delivery, mailing=mailing, client=client)


def test_monthly_personal_statistic_counts_this_month_only(
    org: Any, agent: Any, make_client: Any
) -> None:
    from mailing.services import template_create

    client = make_client(org, name="Ann")
    _history(org, client)
    template = template_create(
        organization=org, title="Month", code="monthly_personal_statistic", body=MONTHLY
    )
    response = agent.client().post(
        f"/api/templates/{template.pk}/preview/", {"client": client.pk}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    today = timezone.now().date().isoformat()
    assert body["text"] == f"Ann: 2 conversations, 3 messages, last {today}, 1 mailings"
    assert body["provider"] == "monthly_personal_statistic"


def test_a_mailing_renders_each_client_with_the_codes_provider(org: Any, make_client: Any) -> None:
    from core.models import Delivery
    from mailing.services import mailing_create, mailing_start, template_create

    busy = make_client(org, name="Busy")
    quiet = make_client(org, name="Quiet")
    _history(org, busy)
    template = template_create(
        organization=org, title="Month", code="monthly_personal_statistic", body=MONTHLY
    )
    now = timezone.now()
    mailing = mailing_create(
        organization=org,
        start_at=now,
        end_at=now + timedelta(hours=1),
        template=template,
        client_ids=[busy.pk, quiet.pk],
    )
    mailing_start(mailing_id=mailing.pk)
    texts = dict(
        Delivery.objects.filter(mailing_message__mailing=mailing).values_list(
            "mailing_message__client_id", "text"
        )
    )
    assert texts[quiet.pk] == "Quiet: 0 conversations, 0 messages, last , 0 mailings"
    assert texts[busy.pk].startswith("Busy: 2 conversations, 3 messages")


def test_provider_placeholders_only_under_their_code(agent: Any) -> None:
    api = agent.client()
    common = api.post(
        "/api/templates/",
        {"organization": "acme", "title": "t", "code": "welcome", "body": MONTHLY},
        format="json",
    )
    assert common.status_code == 400
    assert "body" in common.json()["error"]["fields"]
    monthly = api.post(
        "/api/templates/",
        {
            "organization": "acme",
            "title": "t",
            "code": "monthly_personal_statistic",
            "body": MONTHLY,
        },
        format="json",
    )
    assert monthly.status_code == 201, monthly.content


def test_email_template_checks_subject_and_html(agent: Any) -> None:
    api = agent.client()
    base = {"organization": "acme", "title": "t", "code": "mail", "transport": "email"}
    no_subject = api.post("/api/templates/", {**base, "body": "hi"}, format="json")
    assert no_subject.status_code == 400 and "subject" in no_subject.json()["error"]["fields"]
    bad_html = api.post(
        "/api/templates/",
        {**base, "body": "hi", "subject": "s", "html_body": "<p>{{ nope }}</p>"},
        format="json",
    )
    assert bad_html.status_code == 400 and "html_body" in bad_html.json()["error"]["fields"]
    injected = api.post(
        "/api/templates/",
        {**base, "body": "hi", "subject": "s\r\nBcc: x@evil.test"},
        format="json",
    )
    assert injected.status_code == 400 and "subject" in injected.json()["error"]["fields"]


def test_preview_escapes_values_in_html(org: Any, agent: Any, make_client: Any) -> None:
    from mailing.services import template_create

    client = make_client(org, name="<img src=x onerror=alert(1)>")
    template = template_create(
        organization=org,
        title="t",
        code="hello",
        transport="email",
        subject="Hi {{ name }}",
        body="Hi {{ name }}",
        html_body="<h1>Hi {{ name }}</h1>",
    )
    body = (
        agent.client()
        .post(f"/api/templates/{template.pk}/preview/", {"client": client.pk}, format="json")
        .json()
    )
    assert body["html"] == "<h1>Hi &lt;img src=x onerror=alert(1)&gt;</h1>"
    assert body["text"] == "Hi <img src=x onerror=alert(1)>"  # text/plain: nothing to escape


def test_preview_of_another_tenants_client_or_template(
    org: Any, agent: Any, make_org: Any, make_agent: Any, make_client: Any
) -> None:
    from mailing.services import template_create

    other = make_org("other")
    stranger = make_client(other)
    mine = template_create(organization=org, title="t", code="a", body="Hi {{ name }}")
    theirs = template_create(organization=other, title="t", code="a", body="Hi {{ name }}")
    api = agent.client()
    response = api.post(
        f"/api/templates/{mine.pk}/preview/", {"client": stranger.pk}, format="json"
    )
    assert response.status_code == 400
    assert "client" in response.json()["error"]["fields"]
    response = api.post(
        f"/api/templates/{theirs.pk}/preview/", {"client": stranger.pk}, format="json"
    )
    assert response.status_code == 404
    hostile = api.post(
        f"/api/templates/{mine.pk}/preview/", {"client": "1 OR 1=1", "context": []}, format="json"
    )
    assert hostile.status_code == 400
    assert set(hostile.json()["error"]["fields"]) == {"client", "context"}
