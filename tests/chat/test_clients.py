"""Clients CRUD and validation over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from chat.models import Client

pytestmark = pytest.mark.django_db


def _create(api: Any, **fields: Any) -> Any:
    body = {"organization": "acme", "name": "Ann", "phone": "79161234567", **fields}
    return api.post("/api/clients/", body, format="json")


def _fields(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" or "fields" in error
    return dict(error["fields"])


def test_create_derives_operator_code_and_defaults(agent):
    response = _create(agent.client())

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["operator_code"] == "916"
    assert body["timezone"] == "UTC"
    assert body["tag"] == ""
    assert body["organization"] == "acme"
    assert Client.objects.get(uuid=body["uuid"]).organization == agent.organization


def test_create_with_all_fields(agent):
    response = _create(
        agent.client(),
        operator_code="916",
        tag="vip_2024.a-b",
        timezone="Europe/Moscow",
        promo_opt_out=True,
    )
    assert response.status_code == 201, response.content
    assert response.json()["timezone"] == "Europe/Moscow"
    assert response.json()["promo_opt_out"] is True


@pytest.mark.parametrize(
    "phone",
    ["89161234567", "7916123456", "791612345678", "+79161234567", "7916123456a", "", "7 916123456"],
)
def test_bad_phone_is_400(agent, phone):
    assert "phone" in _fields(_create(agent.client(), phone=phone))
    assert not Client.objects.exists()


def test_operator_code_must_match_digits_2_to_4(agent):
    fields = _fields(_create(agent.client(), operator_code="903"))
    assert "operator_code" in fields
    assert "916" in fields["operator_code"][0]


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "utc+3", "", "Europe/moscow"])
def test_bad_timezone_is_400(agent, timezone):
    assert "timezone" in _fields(_create(agent.client(), timezone=timezone))


@pytest.mark.parametrize("tag", ["-starts-with-dash", "has space", "x" * 51, "ünï"])
def test_bad_tag_is_400(agent, tag):
    assert "tag" in _fields(_create(agent.client(), tag=tag))


def test_duplicate_phone_in_same_organization_is_400(agent):
    api = agent.client()
    assert _create(api).status_code == 201

    fields = _fields(_create(api, name="Other"))

    assert "phone" in fields
    assert Client.objects.count() == 1


def test_same_phone_in_another_organization_is_fine(agent, make_org):
    from core.services import membership_add

    membership_add(organization=make_org("beta"), user=agent.user)
    api = agent.client()
    assert _create(api).status_code == 201
    assert _create(api, organization="beta").status_code == 201
    assert Client.objects.filter(phone="79161234567").count() == 2


def test_create_requires_organization_for_agent_keys(agent):
    response = agent.client().post(
        "/api/clients/", {"name": "Ann", "phone": "79161234567"}, format="json"
    )
    assert "organization" in _fields(response)


def test_create_in_unknown_organization_is_404(agent):
    response = _create(agent.client(), organization="nosuch")
    assert response.status_code == 404
    assert not Client.objects.exists()


def test_get_list_patch_put_delete(agent, org, make_client):
    api = agent.client()
    client = make_client(org, tag="old")
    make_client(org, tag="other")

    listed = api.get("/api/clients/?organization=acme&tag=old")
    assert [c["uuid"] for c in listed.json()] == [str(client.uuid)]
    assert api.get(f"/api/clients/{client.uuid}/").json()["phone"] == client.phone

    patched = api.patch(f"/api/clients/{client.uuid}/", {"phone": "79031112233"}, format="json")
    assert patched.status_code == 200, patched.content
    assert patched.json()["operator_code"] == "903"  # re-derived with the phone

    put = api.put(
        f"/api/clients/{client.uuid}/",
        {"name": "New", "phone": "79261112233", "timezone": "Asia/Tokyo"},
        format="json",
    )
    assert put.status_code == 200, put.content
    assert put.json()["name"] == "New"
    assert put.json()["operator_code"] == "926"
    assert put.json()["timezone"] == "Asia/Tokyo"

    assert api.delete(f"/api/clients/{client.uuid}/").status_code == 204
    assert api.get(f"/api/clients/{client.uuid}/").status_code == 404


def test_patch_operator_code_alone_is_checked_against_stored_phone(agent, org, make_client):
    client = make_client(org, phone="79161234567")
    api = agent.client()
    response = api.patch(f"/api/clients/{client.uuid}/", {"operator_code": "903"}, format="json")
    assert "operator_code" in _fields(response)
    client.refresh_from_db()
    assert client.operator_code == "916"


def test_patch_to_duplicate_phone_is_400(agent, org, make_client):
    first, second = make_client(org), make_client(org)
    response = agent.client().patch(
        f"/api/clients/{second.uuid}/", {"phone": first.phone}, format="json"
    )
    assert "phone" in _fields(response)
    second.refresh_from_db()
    assert second.phone != first.phone


def test_put_without_required_fields_is_400(agent, org, make_client):
    client = make_client(org)
    response = agent.client().put(f"/api/clients/{client.uuid}/", {"name": "x"}, format="json")
    assert "phone" in _fields(response)


def test_client_cannot_move_between_organizations(agent, org, make_client, make_org):
    from core.services import membership_add

    membership_add(organization=make_org("beta"), user=agent.user)
    client = make_client(org)
    response = agent.client().patch(
        f"/api/clients/{client.uuid}/", {"organization": "beta"}, format="json"
    )
    assert response.status_code == 200
    client.refresh_from_db()
    assert client.organization == org


def test_client_list_paginates_with_link_header(agent, org, make_client):
    for _ in range(5):
        make_client(org)
    api = agent.client()
    seen: list[str] = []
    url: str | None = "/api/clients/?organization=acme&page_size=2"
    while url:
        response = api.get(url)
        seen += [c["uuid"] for c in response.json()]
        link = response.headers.get("Link", "")
        url = link.split(">;")[0].lstrip("<") if 'rel="next"' in link.split(",")[0] else None
    assert len(seen) == len(set(seen)) == 5
