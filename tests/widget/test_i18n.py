"""The widget's languages (issue 16): a visitor reads the widget and every answer of its
public API in the browser's language when the platform speaks it, else in the inbox's
default; the texts come from the widget's own `strings/` (CORS for the inbox's origins
only, cached with an ETag); the inbox's default is one the platform speaks."""

from __future__ import annotations

from typing import Any

import pytest

from tests.widget.conftest import ORIGIN, Widget

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("compiled_catalogs")]

RU = "ru-RU,ru;q=0.9,en;q=0.5"
DE = "de-DE,de;q=0.9"  # a language the platform does not speak


@pytest.fixture
def portuguese_inbox(inbox: Any) -> Any:
    inbox.language = "pt-br"
    inbox.save()
    return inbox


def test_strings_in_the_browser_language_else_the_inbox_default(portuguese_inbox, widget):
    url = widget.url("strings")
    # a Russian browser: Russian, whatever the inbox's default
    russian = widget.api.get(url, HTTP_ACCEPT_LANGUAGE=RU)
    assert russian.status_code == 200, russian.content
    assert russian.json()["language"] == "ru"
    assert russian.json()["strings"]["Open chat"] == "Открыть чат"
    assert russian["Content-Language"] == "ru"
    assert russian["Access-Control-Allow-Origin"] == ORIGIN
    vary = {v.strip().lower() for v in russian["Vary"].split(",")}
    assert {"origin", "accept-language"} <= vary
    assert "max-age=300" in russian["Cache-Control"]
    # the browser revalidates: nothing sent again
    again = widget.api.get(url, HTTP_ACCEPT_LANGUAGE=RU, HTTP_IF_NONE_MATCH=russian["ETag"])
    assert again.status_code == 304 and again.content == b""
    # a German browser (not spoken) and a browser that says nothing: the inbox's default
    for header in ({"HTTP_ACCEPT_LANGUAGE": DE}, {}):
        answer = widget.api.get(url, **header)
        assert answer.json()["language"] == "pt-br", header
        assert answer.json()["strings"]["Open chat"] == "Abrir o chat"
        assert answer["ETag"] != russian["ETag"]
    # an English browser gets English (not the inbox's Portuguese)
    english = widget.api.get(url, HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert english.json()["language"] == "en"


def test_strings_refused_to_an_origin_not_allowed_in_the_visitor_language(inbox):
    other = Widget(inbox, origin="https://evil.example")
    answer = other.api.get(other.url("strings"), HTTP_ACCEPT_LANGUAGE=RU)
    assert answer.status_code == 403
    assert "Access-Control-Allow-Origin" not in answer
    error = answer.json()["error"]
    assert error["code"] == "origin_not_allowed"
    assert error["message"].startswith("Этот сайт не может использовать этот виджет")


def test_visitor_errors_and_the_default_away_message_follow_the_visitor(portuguese_inbox, widget):
    widget.api.defaults["HTTP_ACCEPT_LANGUAGE"] = RU
    started = widget.start()
    assert started.status_code == 201
    assert started.json()["config"]["away_message"] == (
        "Сейчас нас нет на месте: оставьте сообщение, и мы вам ответим."
    )
    empty = widget.post("messages", {"text": "  "})
    assert empty.status_code == 400
    assert empty.json()["error"]["message"] == "Напишите что-нибудь или приложите файл."
    assert empty.json()["error"]["fields"] == {"text": ["Пусто."]}
    # an unspoken browser language: the inbox's Portuguese
    widget.api.defaults["HTTP_ACCEPT_LANGUAGE"] = DE
    assert widget.post("messages", {"text": ""}).json()["error"]["fields"] == {"text": ["Vazio."]}
    forged = widget.api.post(
        widget.url("messages"), {"text": "hi"}, format="json", HTTP_X_VISITOR_TOKEN="forged"
    )
    assert forged.status_code == 401
    assert forged.json()["error"]["message"] == "Token de visitante inválido ou expirado."
    # the admin's own away message is shown as written, in any language
    portuguese_inbox.away_message = "Back at 9"
    portuguese_inbox.save()
    assert widget.api.get(widget.url("config")).json()["away_message"] == "Back at 9"


def test_inbox_default_language_is_one_the_platform_speaks(agent, org):
    api = agent.client()
    body = {"organization": org.slug, "name": "Loja", "allowed_origins": [ORIGIN]}
    refused = api.post("/api/web-inboxes/", {**body, "language": "de"}, format="json")
    assert refused.status_code == 400
    assert list(refused.json()["error"]["fields"]) == ["language"]
    created = api.post("/api/web-inboxes/", {**body, "language": "pt-BR"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["language"] == "pt-br"  # as settings.LANGUAGES spell it
    pk = created.json()["id"]
    changed = api.patch(f"/api/web-inboxes/{pk}/", {"language": "ru_RU"}, format="json")
    assert changed.status_code == 200 and changed.json()["language"] == "ru"
