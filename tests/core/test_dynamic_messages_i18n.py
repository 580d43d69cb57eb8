"""Messages built from data, in the caller's language (issue 16): the sentence is
translated, the data in it (topic names, a username, an HTTP method, a scope) is not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("compiled_catalogs")]

RU = {"HTTP_ACCEPT_LANGUAGE": "ru-RU,ru;q=0.9"}


def _key(org: Any, scopes: list[str] | None = None) -> APIClient:
    from core.services import api_key_create

    _, raw = api_key_create(name="bot", organization=org, scopes=scopes)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def test_unknown_topic_in_russian_names_the_topics_as_they_are(org):
    from chat.models import AssistanceTopic

    for name in ("sales", "engineering"):
        AssistanceTopic.objects.create(organization=org, name=name)
    response = _key(org).post(
        "/assistance/", {"topic": "marketing", "description": "x"}, format="json", **RU
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_topic"
    assert error["message"] == (
        "Неизвестная тема 'marketing'. Допустимые темы: engineering, sales."
    )
    assert error["fields"]["topic"] == ["Неизвестная тема. Допустимые темы: engineering, sales."]
    # and in English, the same data
    english = _key(org).post("/assistance/", {"topic": "marketing"}, format="json")
    assert english.json()["error"]["message"] == (
        "Unknown topic 'marketing'. Valid topics: engineering, sales."
    )


def test_no_topic_configured_in_russian(org):
    response = _key(org).post("/assistance/", {"topic": "sales"}, format="json", **RU)
    assert response.json()["error"]["fields"]["topic"] == [
        "Неизвестная тема. Допустимые темы: не настроены."
    ]


def test_a_scope_refusal_in_russian(org):
    reader = _key(org, ["read"])
    response = reader.post("/assistance/", {"topic": "sales"}, format="json", **RU)
    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        "У этого API-ключа нет права «assistance», нужного для POST на этом адресе."  # noqa: RUF001
    )


def test_an_event_for_an_unknown_client_in_russian(org):
    shop = _key(org, ["events"])
    response = shop.post(
        "/api/events/",
        {"event": "user_registered", "client": "nobody@example.test", "idempotency_key": "k"},
        format="json",
        **RU,
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"]["client"] == [
        "Клиент не найден (uuid, телефон или email)."
    ]


def test_a_bad_client_field_in_russian(agent):
    response = agent.client().post(
        "/api/clients/",
        {"organization": "acme", "name": "Olga", "phone": "12345", "timezone": "Mars/Base"},
        format="json",
        **RU,
    )
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert fields["phone"] == ["Телефон должен быть в виде 7XXXXXXXXXX (11 цифр, первая — 7)."]
    assert fields["timezone"] == ["'Mars/Base' — не часовой пояс IANA (например, Europe/Moscow)."]


def test_the_consoles_snooze_errors_in_portuguese(agent, help_desk):
    api = agent.client()
    response = api.patch(
        f"/api/help-desks/{help_desk.uuid}/",
        {"status": "snoozed"},
        format="json",
        HTTP_ACCEPT_LANGUAGE="pt-BR",
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"]["snoozed_until"] == [
        "Obrigatório quando o status é adiado."
    ]
