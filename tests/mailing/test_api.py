"""Mailing HTTP API: CRUD, validation (400 with field errors), access, statistics."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db


def _body(**over: Any) -> dict[str, Any]:
    now = timezone.now()
    body: dict[str, Any] = {
        "organization": "acme",
        "name": "Spring sale",
        "start_at": (now + timedelta(hours=1)).isoformat(),
        "end_at": (now + timedelta(hours=2)).isoformat(),
        "text": "Hi {{ name }}, {{ discount }} off!",
        "context": {"discount": "10%"},
        "operator_codes": ["916", "903"],
        "tags": ["vip"],
        "priority": 7,
        "promo": True,
        "window_start": "09:00",
        "window_end": "21:00",
    }
    body.update(over)
    return body


def _fields(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.content
    return dict(response.json()["error"]["fields"])


def test_mailing_crud(agent: Any) -> None:
    api = agent.client()
    created = api.post("/api/mailings/", _body(), format="json")
    assert created.status_code == 201, created.content
    mailing = created.json()
    assert mailing["status"] == "scheduled"
    assert mailing["tags"] == ["vip"] and mailing["operator_codes"] == ["916", "903"]
    assert mailing["window_start"] == "09:00:00"

    listed = api.get("/api/mailings/?organization=acme")
    assert [m["id"] for m in listed.json()] == [mailing["id"]]

    patched = api.patch(
        f"/api/mailings/{mailing['id']}/", {"tags": ["vip", "gold"], "priority": 9}, format="json"
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["tags"] == ["vip", "gold"] and patched.json()["priority"] == 9

    detail = api.get(f"/api/mailings/{mailing['id']}/")
    assert detail.json()["counts"]["total"] == 0

    assert api.delete(f"/api/mailings/{mailing['id']}/").status_code == 204
    assert api.get(f"/api/mailings/{mailing['id']}/").status_code == 404


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"start_at": "not a date"}, "start_at"),
        ({"end_at": "2026-13-45T99:00"}, "end_at"),
        ({"end_at": "2020-01-01T00:00:00Z", "start_at": "2020-01-02T00:00:00Z"}, "end_at"),
        ({"tags": ["bad tag!"]}, "tags"),
        ({"tags": "vip"}, "tags"),
        ({"operator_codes": ["91"]}, "operator_codes"),
        ({"text": "Hi {{ unknown }}"}, "text"),
        ({"text": "Hi {{ name"}, "text"),
        ({"text": ""}, "text"),
        ({"window_end": None}, "window_end"),
        ({"priority": 11}, "priority"),
        ({"context": {"bad key": "x"}}, "context"),
        ({"client_ids": [987654]}, "client_ids"),
        ({"template": 987654}, "template"),
        ({"organization": None}, "organization"),
    ],
)
def test_mailing_bad_input_is_a_400_with_field_errors(
    agent: Any, over: dict[str, Any], field: str
) -> None:
    body = _body(**over)
    if over.get("organization", "") is None:
        del body["organization"]
    response = agent.client().post("/api/mailings/", body, format="json")
    assert field in _fields(response)


def test_mailing_end_in_the_past_is_refused(agent: Any) -> None:
    now = timezone.now()
    response = agent.client().post(
        "/api/mailings/",
        _body(
            start_at=(now - timedelta(hours=2)).isoformat(),
            end_at=(now - timedelta(hours=1)).isoformat(),
        ),
        format="json",
    )
    assert "end_at" in _fields(response)


def test_non_member_gets_404(agent: Any, make_org: Any, make_agent: Any) -> None:
    other = make_agent("bob", make_org("other"))
    mailing = agent.client().post("/api/mailings/", _body(), format="json").json()
    api = other.client()
    assert api.get(f"/api/mailings/{mailing['id']}/").status_code == 404
    assert api.get(f"/api/mailings/{mailing['id']}/stats/").status_code == 404
    assert api.get("/api/mailings/?organization=acme").status_code == 404
    assert api.post("/api/mailings/", _body(), format="json").status_code == 404
    assert api.get("/api/mailings/").json() == []


def test_unauthenticated_is_refused(agent: Any) -> None:
    from rest_framework.test import APIClient

    assert APIClient().get("/api/mailings/").status_code == 401


def test_cursor_pagination_uses_the_link_header(agent: Any) -> None:
    api = agent.client()
    for n in range(3):
        assert api.post("/api/mailings/", _body(name=f"m{n}"), format="json").status_code == 201
    first = api.get("/api/mailings/?organization=acme&page_size=2")
    assert [m["name"] for m in first.json()] == ["m2", "m1"]
    link = first.headers["Link"]
    assert 'rel="next"' in link
    second = api.get(link.split(";")[0].strip("<>"))
    assert [m["name"] for m in second.json()] == ["m0"]


def test_template_unknown_placeholder_is_a_field_error(agent: Any) -> None:
    api = agent.client()
    bad = api.post(
        "/api/templates/",
        {"organization": "acme", "title": "T", "code": "t", "body": "Hi {{ nickname }}"},
        format="json",
    )
    assert "body" in _fields(bad)
    good = api.post(
        "/api/templates/",
        {
            "organization": "acme",
            "title": "T",
            "code": "t",
            "body": "Hi {{ name }}, code {{ promo_code }}",
            "variables": ["promo_code"],
        },
        format="json",
    )
    assert good.status_code == 201, good.content
    # a mailing with this template must give the declared variables
    missing = api.post(
        "/api/mailings/",
        _body(text="", template=good.json()["id"], context={}),
        format="json",
    )
    assert "context" in _fields(missing)
    ok = api.post(
        "/api/mailings/",
        _body(text="", template=good.json()["id"], context={"promo_code": "X1"}),
        format="json",
    )
    assert ok.status_code == 201, ok.content
    assert api.delete(f"/api/templates/{good.json()['id']}/").status_code == 409


def test_template_renders_per_client_without_the_django_engine() -> None:
    from mailing.rendering import render

    values = {"name": "{{ x }} {% debug %}", "x": "no"}
    assert render("Hi {{ name }}!", values) == "Hi {{ x }} {% debug %}!"


def test_started_mailing_cannot_change_its_audience(
    agent: Any, org: Any, make_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from mailing.services import mailing_start

    make_client(org, tag="vip")
    api = agent.client()
    now = timezone.now()
    mailing = api.post(
        "/api/mailings/",
        _body(start_at=now.isoformat(), window_start=None, window_end=None),
        format="json",
    ).json()
    with django_capture_on_commit_callbacks(execute=False):
        mailing_start(mailing_id=mailing["id"])
    response = api.patch(f"/api/mailings/{mailing['id']}/", {"tags": ["x"]}, format="json")
    assert response.status_code == 409
    assert "tags" in response.json()["error"]["fields"]
    assert response.json()["error"]["message"].startswith("The mailing is running: ")
    # the status in the reader's words, not the stored value
    portuguese = api.patch(
        f"/api/mailings/{mailing['id']}/",
        {"tags": ["x"]},
        format="json",
        HTTP_ACCEPT_LANGUAGE="pt-BR",
    )
    assert portuguese.json()["error"]["message"].startswith("O disparo está em andamento: ")
    assert api.delete(f"/api/mailings/{mailing['id']}/").status_code == 409
    cancelled = api.post(f"/api/mailings/{mailing['id']}/cancel/")
    assert cancelled.json()["status"] == "cancelled"


def test_notification_endpoint_merges_ids_and_tags(
    agent: Any, org: Any, make_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from mailing.models import Mailing
    from mailing.services import audience

    by_id = make_client(org, tag="x")
    tagged = make_client(org, tag="vip")
    make_client(org, tag="x")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = agent.client().post(
            "/api/notifications/",
            {
                "organization": "acme",
                "text": "Your order is ready, {{ name }}",
                "client_ids": [by_id.pk],
                "tags": ["vip"],
                "priority": 9,
            },
            format="json",
        )
    assert response.status_code == 201, response.content
    mailing = Mailing.objects.get(pk=response.json()["id"])
    assert set(audience(mailing).values_list("pk", flat=True)) == {by_id.pk, tagged.pk}
    assert len(callbacks) == 2  # dispatch enqueued, update_mailing published, after commit

    bad = agent.client().post(
        "/api/notifications/", {"organization": "acme", "text": "x"}, format="json"
    )
    assert "client_ids" in _fields(bad)


def test_statistics_shapes(
    agent: Any, org: Any, make_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from mailing.services import mailing_start

    for _ in range(3):
        make_client(org, tag="vip")
    api = agent.client()
    mailing = api.post(
        "/api/mailings/",
        _body(
            start_at=timezone.now().isoformat(),
            window_start=None,
            window_end=None,
            operator_codes=[],
        ),
        format="json",
    ).json()
    with django_capture_on_commit_callbacks(execute=False):
        mailing_start(mailing_id=mailing["id"])
    overall = api.get("/api/mailings/stats/?organization=acme").json()
    assert overall[0]["id"] == mailing["id"]
    assert overall[0]["counts"]["pending"] == 3 and overall[0]["counts"]["total"] == 3
    stats = api.get(f"/api/mailings/{mailing['id']}/stats/").json()
    assert stats["counts"]["pending"] == 3 and stats["started_at"] is not None
    messages = api.get(f"/api/mailings/{mailing['id']}/messages/").json()
    assert len(messages) == 3
    assert {"id", "created", "status", "mailing", "client", "attempts"} <= set(messages[0])
    assert messages[0]["status"] == "pending" and messages[0]["attempts"] == []


def test_patch_end_before_the_existing_start_is_a_field_error(agent: Any) -> None:
    api = agent.client()
    mailing = api.post("/api/mailings/", _body(), format="json").json()
    start = timezone.datetime.fromisoformat(mailing["start_at"])
    # only end_at is sent: it is checked against the start already stored
    response = api.patch(
        f"/api/mailings/{mailing['id']}/",
        {"end_at": (start - timedelta(minutes=1)).isoformat()},
        format="json",
    )
    assert "end_at" in _fields(response)
    assert api.get(f"/api/mailings/{mailing['id']}/").json()["end_at"] == mailing["end_at"]
