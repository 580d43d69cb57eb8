"""Search (issue 13): clients and message text, one organization's only. Runs on the
database in use: SQLite's FTS5 here, PostgreSQL's full text in CI's PostgreSQL run."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from chat import services
from core.services import api_key_create

pytestmark = pytest.mark.django_db


def _search(api: APIClient, q: str, **params: Any) -> Any:
    return api.get("/api/search/", {"q": q, **params})


@pytest.fixture
def ann(org: Any, make_client: Any) -> Any:
    return make_client(org, name="Ann Lee", phone="79161112233", tag="vip")


def test_messages_match_words_and_prefixes_newest_first(agent, org, ann, make_client):
    services.message_receive(organization=org, phone=ann.phone, text="Where is my refund?")
    desk = ann.help_desks.get()
    services.message_create(help_desk=desk, text="Your REFUND was sent today", sender=agent.user)
    services.message_receive(organization=org, phone=ann.phone, text="Привет, посылка где?")
    services.message_receive(organization=org, phone=ann.phone, text="nothing relevant")

    body = _search(agent.client(), "refu", organization="acme").json()
    assert [h["message"]["message"] for h in body["messages"]] == [
        "Your REFUND was sent today",
        "Where is my refund?",
    ]
    hit = body["messages"][0]
    assert hit["help_desk"] == str(desk.uuid)
    assert hit["client"] == {"uuid": str(ann.uuid), "name": "Ann Lee"}
    assert hit["snippet"] == "Your REFUND was sent today"
    assert hit["message"]["sender"] == "alice"
    # every word must match; any script
    assert len(_search(agent.client(), "refund today").json()["messages"]) == 1
    assert [h["message"]["message"] for h in _search(agent.client(), "посыл").json()["messages"]]
    assert _search(agent.client(), "refund banana").json()["messages"] == []


def test_clients_match_name_phone_tag_and_email(agent, org, ann, make_client):
    make_client(org, name="Bob", email="bob@example.com")
    api = agent.client()
    names = lambda q: [c["name"] for c in _search(api, q).json()["clients"]]  # noqa: E731
    assert names("ann l") == ["Ann Lee"]
    assert names("1112") == ["Ann Lee"]
    assert names("VIP") == ["Ann Lee"]
    assert names("example.com") == ["Bob"]


def test_a_deleted_message_is_no_longer_found(agent, org, ann):
    message = services.message_receive(organization=org, phone=ann.phone, text="secret plan")
    assert _search(agent.client(), "secret").json()["messages"]
    services.message_delete(message=message)
    assert _search(agent.client(), "secret").json()["messages"] == []


def test_another_tenants_data_is_never_found(agent, org, ann, make_agent, make_org, make_client):
    services.message_receive(organization=org, phone=ann.phone, text="acme internal words")
    globex = make_org("globex")
    eve = make_agent("eve", globex)
    theirs = make_client(globex, name="Ann Other")
    services.message_receive(organization=globex, phone=theirs.phone, text="globex internal")

    mine = _search(agent.client(), "internal").json()
    assert [h["message"]["message"] for h in mine["messages"]] == ["acme internal words"]
    assert [c["name"] for c in _search(agent.client(), "Ann").json()["clients"]] == ["Ann Lee"]
    eves = _search(eve.client(), "internal").json()
    assert [h["message"]["message"] for h in eves["messages"]] == ["globex internal"]
    assert _search(eve.client(), "internal", organization="acme").status_code == 404
    assert APIClient().get("/api/search/", {"q": "internal"}).status_code == 401
    _, raw = api_key_create(name="bot", organization=org)  # integration defaults: no read
    bot = APIClient()
    bot.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert _search(bot, "internal").status_code == 403


@pytest.mark.parametrize("q", ["", "a", " b ", "x" * 201])
def test_query_length_is_checked(agent, q):
    response = _search(agent.client(), q)
    assert response.status_code == 400
    assert "q" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    "q",
    [
        '"""',
        '""',
        "refund*",
        "NEAR(a b)",
        "a OR b",
        "x:*",
        "a & b | !c",
        "'; DROP TABLE",
        "--",
        "\\x",
    ],
)
def test_query_syntax_of_either_engine_is_plain_text(agent, org, ann, q):
    services.message_receive(organization=org, phone=ann.phone, text="refund a b c x drop")
    response = _search(agent.client(), q)
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"clients", "messages"}


def test_the_index_exists_for_the_engine_in_use():
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'chat_message_fts_gin'"
            )
            [(definition,)] = cursor.fetchall()
            assert "gin" in definition.lower() and "to_tsvector" in definition
            cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'chat_client'")
            assert {
                "chat_client_name_trgm",
                "chat_client_email_trgm",
                "chat_client_phone_trgm",
                "chat_client_tag_upper",
            } <= {row[0] for row in cursor.fetchall()}
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master"
                " WHERE type = 'trigger' AND tbl_name = 'chat_message'"
            )
            assert {"chat_message_fts_ai", "chat_message_fts_ad", "chat_message_fts_au"} <= {
                row[0] for row in cursor.fetchall()
            }
