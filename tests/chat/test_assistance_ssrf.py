"""SSRF through assistance webhooks (issue 9 item 2), as a hostile tenant would try it:
point a topic's webhook at loopback, Redis, the metadata service or the private network,
through the API and the admin; and a URL that passed the check but points inside later
(a row saved before the check, DNS rebinding, a redirect) is refused at send time with
no connection made, the refusal recorded in the attempt row.

These run with OUTBOUND_ALLOW_PRIVATE off (the worker too); the receivers on 127.0.0.1
stand for the internal services an attacker would aim at.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from chat.assistance import assistance_request_route, assistance_webhook_deliver
from chat.models import AssistanceRequest, AssistanceTopic, AssistanceWebhook
from tests.chat.test_assistance import bot_client, make_topic
from tests.conftest import wait_until
from tests.outbound_fakes import http_receiver, install_fake_dns

REFUSED = [
    ("http://127.0.0.1:8000/hook", "127.0.0.1 is loopback"),
    ("http://[::1]:6379/", "::1 is loopback"),
    ("http://169.254.169.254/latest/meta-data/", "the cloud metadata service"),
    ("http://10.0.0.5/hook", "10.0.0.5 is private"),
    ("http://localhost:8000/hook", "localhost resolves to 127.0.0.1, which is loopback"),
    ("http://loopback.test/hook", "loopback.test resolves to 127.0.0.1, which is loopback"),
    ("ftp://93.184.216.34/hook", "only http or https"),
    ("file:///etc/passwd", ""),  # DRF's URL field already says no
    ("gopher://127.0.0.1:6379/_FLUSHALL", ""),
]


@pytest.fixture(autouse=True)
def strict(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = False


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Any:
    fake = install_fake_dns(monkeypatch)
    fake.script("loopback.test", ["127.0.0.1"])
    return fake


def _route_and_deliver(org: Any) -> AssistanceWebhook:
    rid = bot_client(org).post("/assistance/", {"topic": "sales"}, format="json").json()["id"]
    assistance_request_route(request_id=AssistanceRequest.objects.get(uuid=rid).pk)
    webhook = AssistanceWebhook.objects.get()
    assistance_webhook_deliver(webhook_id=webhook.pk)
    webhook.refresh_from_db()
    return webhook


# --- save time ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_topic_api_refuses_internal_webhook_urls(org, make_agent, dns, url, why):
    admin = make_agent("ann", org, role="admin")
    body = {"organization": org.slug, "name": "sales", "webhook_url": url}
    response = admin.client().post("/api/assistance/topics/", body, format="json")
    assert response.status_code == 400, response.content
    message = response.json()["error"]["fields"]["webhook_url"][0]
    assert why in message
    if why:
        assert message.startswith("Webhook URL must be a public http(s) address;")
    assert not AssistanceTopic.objects.exists()


@pytest.mark.django_db
def test_topic_api_accepts_a_public_url_and_refuses_changing_it_to_an_internal_one(
    org, make_agent, dns
):
    admin = make_agent("ann", org, role="admin")
    body = {"organization": org.slug, "name": "sales", "webhook_url": "https://93.184.216.34/h"}
    created = admin.client().post("/api/assistance/topics/", body, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]

    patched = admin.client().patch(
        f"/api/assistance/topics/{pk}/", {"webhook_url": "http://[::1]:6379/"}, format="json"
    )
    assert patched.status_code == 400
    assert "::1 is loopback" in patched.json()["error"]["fields"]["webhook_url"][0]
    assert AssistanceTopic.objects.get().webhook_url == "https://93.184.216.34/h"


@pytest.mark.django_db
def test_admin_refuses_internal_webhook_urls(staff, org, dns):
    add = reverse("admin:chat_assistancetopic_add")
    for url, why in REFUSED[:7]:
        page = staff.post(add, {"organization": org.pk, "name": "sales", "webhook_url": url})
        assert page.status_code == 200 and why.encode() in page.content, url
    assert not AssistanceTopic.objects.exists()
    done = staff.post(
        add, {"organization": org.pk, "name": "sales", "webhook_url": "http://93.184.216.34/"}
    )
    assert done.status_code == 302
    assert AssistanceTopic.objects.get().webhook_url == "http://93.184.216.34/"


# --- send time ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_worker_refuses_a_saved_internal_url_without_connecting(org, start_worker):
    with http_receiver() as internal:
        # given a topic row that points inside (saved before the check: set in the DB)
        make_topic(org, webhook_url=f"{internal.url}/hook")
        start_worker(OUTBOUND_ALLOW_PRIVATE="false")

        # when a bot asks for a human, the worker routes it and tries the webhook
        response = bot_client(org).post("/assistance/", {"topic": "sales"}, format="json")
        assert response.status_code == 202, response.content
        webhook = wait_until(
            lambda: AssistanceWebhook.objects.filter(status="failed").first(), timeout=60
        )

    # then nothing reached the receiver, and the attempt says why, once (no retry)
    assert internal.calls == []
    attempts = list(webhook.attempt_rows.values_list("number", "status_code", "error"))
    assert attempts == [(1, None, "refused: 127.0.0.1 is loopback")]
    assert webhook.attempts == 1 and webhook.next_attempt_at is None


@pytest.mark.django_db
def test_dns_rebinding_after_the_check_is_refused_at_send(org, make_agent, dns):
    admin = make_agent("ann", org, role="admin")
    with http_receiver() as internal:
        # given a name that answers a public address when the topic is saved ...
        dns.script("rebind.test", ["93.184.216.34"], ["127.0.0.1"])
        url = f"http://rebind.test:{internal.port}/hook"
        body = {"organization": org.slug, "name": "sales", "webhook_url": url}
        created = admin.client().post("/api/assistance/topics/", body, format="json")
        assert created.status_code == 201, created.content
        # ... and loopback from then on
        webhook = _route_and_deliver(org)
    assert internal.calls == []
    assert webhook.status == "failed"
    [(status_code, error)] = webhook.attempt_rows.values_list("status_code", "error")
    assert status_code is None
    assert error == "refused: rebind.test resolves to 127.0.0.1, which is loopback"


@pytest.mark.django_db
def test_a_redirect_is_not_followed_and_fails_the_webhook(org, settings):
    # the switch is on so that the first hop (on loopback) is reached at all
    settings.OUTBOUND_ALLOW_PRIVATE = True
    with http_receiver() as internal:
        redirect = {"Location": f"{internal.url}/admin"}
        with http_receiver(status=302, headers=redirect) as hop:
            make_topic(org, webhook_url=f"{hop.url}/hook")
            webhook = _route_and_deliver(org)
    assert len(hop.calls) == 1 and internal.calls == []
    assert webhook.status == "failed"
    [(status_code, error)] = webhook.attempt_rows.values_list("status_code", "error")
    assert status_code == 302 and "redirects are not followed" in error


@pytest.mark.django_db
def test_a_name_that_does_not_resolve_is_retried_not_failed(org, dns):
    dns.script("gone.test", [])
    make_topic(org, webhook_url="https://gone.test/hook")
    webhook = _route_and_deliver(org)
    assert webhook.status == "pending" and webhook.next_attempt_at is not None
    [error] = webhook.attempt_rows.values_list("error", flat=True)
    assert error.startswith("not sent: gone.test could not be resolved")
