"""Unsubscribe (RFC 8058) and the provider's bounce webhook, and what they change in the
next mailings: skipped and counted at materialization, refused at send time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client as Browser
from django.utils import timezone
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def _email_client(make_client: Any, org: Any, email: str, **fields: Any) -> Any:
    from chat.models import Client

    client = make_client(org, **fields)
    Client.objects.filter(pk=client.pk).update(email=email)
    client.refresh_from_db()
    return client


def _email_mailing(org: Any, *, promo: bool, transports: tuple[str, ...] = ("email",)) -> Any:
    from mailing.services import mailing_create, template_create

    template = template_create(
        organization=org,
        title="News",
        code=f"news-{promo}-{len(transports)}",
        transport="email",
        subject="News for {{ name }}",
        body="Hello {{ name }}",
    )
    now = timezone.now()
    return mailing_create(
        organization=org,
        start_at=now,
        end_at=now + timedelta(minutes=10),
        template=template,
        transports=list(transports),
        promo=promo,
    )


def _integration(org: Any, scopes: list[str]) -> APIClient:
    from core.services import api_key_create

    _, raw = api_key_create(name="provider", organization=org, scopes=scopes)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


# --- unsubscribe ---------------------------------------------------------------------------


def test_one_click_post_unsubscribes_without_session_or_csrf(org: Any, make_client: Any) -> None:
    from mailing.unsubscribe import unsubscribe_url

    client = _email_client(make_client, org, "a@example.test")
    path = unsubscribe_url(client.pk).split("://", 1)[1].split("/", 1)[1]
    # what a mail provider sends: no cookie, no CSRF token, the RFC 8058 body
    provider = Browser(enforce_csrf_checks=True)
    response = provider.post(
        f"/{path}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    client.refresh_from_db()
    assert client.email_promo_opt_out is True
    assert client.promo_opt_out is False  # SMS is another channel's choice


def test_get_shows_a_confirmation_and_changes_nothing(org: Any, make_client: Any) -> None:
    from mailing.unsubscribe import unsubscribe_token

    client = _email_client(make_client, org, "a@example.test")
    response = Browser().get(f"/u/{unsubscribe_token(client.pk)}/")
    assert response.status_code == 200
    assert b'<form method="post">' in response.content and b"<button" in response.content
    client.refresh_from_db()
    assert client.email_promo_opt_out is False


@pytest.mark.parametrize("forge", ["tamper", "other_client", "other_salt", "garbage", "expired"])
def test_forged_or_expired_links_change_nothing(
    org: Any, make_client: Any, forge: str, settings: Any
) -> None:
    from django.core import signing

    from mailing.unsubscribe import unsubscribe_token

    victim = _email_client(make_client, org, "v@example.test")
    token = unsubscribe_token(victim.pk)
    forged = {
        "tamper": token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        # the attacker's own valid token with the victim's id put in
        "other_client": f"{victim.pk}:" + unsubscribe_token(victim.pk + 1000).split(":", 1)[1],
        "other_salt": signing.TimestampSigner().sign(str(victim.pk)),
        "garbage": "<script>",
        "expired": token,
    }[forge]
    if forge == "expired":
        settings.EMAIL_UNSUBSCRIBE_MAX_AGE = -1
    response = Browser().post(f"/u/{forged}/")
    assert response.status_code == 404
    assert b"not valid" in response.content
    victim.refresh_from_db()
    assert victim.email_promo_opt_out is False


def test_opt_out_skips_promotions_but_not_transactional_mail(
    org: Any, make_client: Any, settings: Any
) -> None:
    from mailing.models import MailingMessage
    from mailing.selectors import mailing_stats
    from mailing.services import mailing_start

    client = _email_client(make_client, org, "a@example.test")
    from mailing.services.contacts import client_email_unsubscribe

    client_email_unsubscribe(client_id=client.pk)
    promo = _email_mailing(org, promo=True)
    mailing_start(mailing_id=promo.pk)
    assert not MailingMessage.objects.filter(mailing=promo).exists()
    assert mailing_stats(mailing=promo)["skipped"]["opted_out"] == 1
    # with SMS as the fallback the client still gets the promotion, by SMS
    fallback = _email_mailing(org, promo=True, transports=("email", "sms"))
    mailing_start(mailing_id=fallback.pk)
    assert MailingMessage.objects.get(mailing=fallback).transport == "sms"
    transactional = _email_mailing(org, promo=False)
    mailing_start(mailing_id=transactional.pk)
    assert MailingMessage.objects.get(mailing=transactional).transport == "email"


def test_an_opt_out_after_the_start_is_refused_at_send_time(org: Any, make_client: Any) -> None:
    from core.models import Delivery
    from core.outbox import new_claim_token
    from mailing.dispatch import claim
    from mailing.services import mailing_start
    from mailing.services.contacts import client_email_unsubscribe

    client = _email_client(make_client, org, "a@example.test")
    mailing = _email_mailing(org, promo=True)
    mailing_start(mailing_id=mailing.pk)
    client_email_unsubscribe(client_id=client.pk)
    rows = claim(
        mailing_id=mailing.pk, token=new_claim_token(), size=10, now=timezone.now(), promo=True
    )
    assert rows == []
    delivery = Delivery.objects.get(mailing_message__mailing=mailing)
    assert (delivery.status, delivery.last_error) == ("failed", "client opted out of promotions")


def test_transactional_mail_has_no_unsubscribe_headers_promotional_has(
    org: Any, make_client: Any, settings: Any
) -> None:
    from mailing.dispatch import mailing_dispatch
    from mailing.services import mailing_start

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PUBLIC_BASE_URL = "https://chat.example.test"
    client = _email_client(make_client, org, "a@example.test")
    for promo in (False, True):
        mail.outbox.clear()
        mailing = _email_mailing(org, promo=promo)
        mailing_start(mailing_id=mailing.pk)
        mailing_dispatch(mailing_id=mailing.pk)
        assert len(mail.outbox) == 1
        headers = mail.outbox[0].extra_headers
        assert mail.outbox[0].subject == f"News for {client.name}"
        if promo:
            assert headers["List-Unsubscribe"].startswith("<https://chat.example.test/u/")
            assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        else:
            assert "List-Unsubscribe" not in headers
            assert "List-Unsubscribe-Post" not in headers


# --- bounces -------------------------------------------------------------------------------


def test_bounce_webhook_marks_only_its_organizations_address(
    org: Any, make_org: Any, make_client: Any
) -> None:
    from mailing.selectors import mailing_stats
    from mailing.services import mailing_start

    other = make_org("other")
    mine = _email_client(make_client, org, "Bob@Example.test")
    theirs = _email_client(make_client, other, "bob@example.test")
    provider = _integration(org, ["email_bounces"])
    response = provider.post(
        "/api/email/bounces/",
        {"type": "bounce", "recipients": ["bob@example.TEST"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"type": "bounce", "clients": [mine.pk]}
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.email_undeliverable is True and theirs.email_undeliverable is False
    # the next mailing skips it and counts it
    mailing = _email_mailing(org, promo=False)
    mailing_start(mailing_id=mailing.pk)
    assert mailing_stats(mailing=mailing)["skipped"] == {
        "no_address": 0,
        "undeliverable": 1,
        "opted_out": 0,
        "total": 1,
    }


def test_a_complaint_also_opts_out_of_promotions(org: Any, make_client: Any) -> None:
    client = _email_client(make_client, org, "c@example.test")
    provider = _integration(org, ["email_bounces"])
    response = provider.post(
        "/api/email/bounces/",
        {"type": "complaint", "recipients": ["c@example.test"]},
        format="json",
    )
    assert response.status_code == 200
    client.refresh_from_db()
    assert client.email_undeliverable and client.email_promo_opt_out


def test_bounce_webhook_refuses_the_unsigned_forged_and_unscoped(
    org: Any, make_client: Any
) -> None:
    client = _email_client(make_client, org, "a@example.test")
    body = {"type": "bounce", "recipients": ["a@example.test"]}
    anonymous = APIClient()
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION="Bearer sk_forged_0000000000000000000000")
    unscoped = _integration(org, ["inbound", "triggers"])
    assert anonymous.post("/api/email/bounces/", body, format="json").status_code == 401
    assert forged.post("/api/email/bounces/", body, format="json").status_code == 401
    refused = unscoped.post("/api/email/bounces/", body, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"
    client.refresh_from_db()
    assert client.email_undeliverable is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "bounce", "recipients": "a@example.test"}, "recipients"),
        ({"type": "bounce", "recipients": ["not-an-address"]}, "recipients"),
        ({"type": "bounce", "recipients": []}, "recipients"),
        ({"type": "bounce", "recipients": [f"a{i}@x.test" for i in range(101)]}, "recipients"),
        ({"type": "soft", "recipients": ["a@example.test"]}, "type"),
        ({"recipients": ["a@example.test"]}, "type"),
        ({"type": ["bounce"], "recipients": [{"$ne": 1}]}, "recipients"),
    ],
)
def test_hostile_bounce_bodies_are_400_with_field_errors(org: Any, body: Any, field: str) -> None:
    provider = _integration(org, ["email_bounces"])
    response = provider.post("/api/email/bounces/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
