"""The REST request path does no per-row work it can avoid (issue 12 item 4).

The help-desk list made one query per row for its nested last message's help desk, and
`POST /api/send-message/` loaded the desk's client and organization again, one query
each, inside its write transaction. `core.api.PlainRepresentation` writes the same
representation as DRF's own `to_representation`, with less work per field.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers

from chat.models import HelpDesk, Message
from chat.representations import ClientSerializer, HelpDeskSerializer, MessageSerializer
from chat.services import message_create
from core import api

pytestmark = pytest.mark.django_db


def _desks_with_messages(org: Any, make_client: Any, agent: Any, count: int) -> list[Any]:
    desks = []
    for n in range(count):
        desk = HelpDesk.objects.create(organization=org, client=make_client(org))
        message_create(help_desk=desk, text=f"hello {n}", sender=agent.user)
        desks.append(desk)
    return desks


def _list_queries(agent: Any) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = agent.client().get("/api/help-desks/?organization=acme")
    assert response.status_code == 200
    return len(captured)


def test_the_help_desk_list_costs_the_same_queries_for_1_or_6_rows(agent, org, make_client):
    _desks_with_messages(org, make_client, agent, 1)
    _list_queries(agent)  # the key's first use writes its last_used_at
    one = _list_queries(agent)
    _desks_with_messages(org, make_client, agent, 5)
    six = _list_queries(agent)
    assert six == one, f"{one} queries for 1 row, {six} for 6: a query per row"


def test_send_message_loads_nothing_twice(agent, help_desk):
    api_client = agent.client()
    api_client.post("/api/send-message/", {"help_desk": str(help_desk.uuid), "message": "warm"})
    with CaptureQueriesContext(connection) as captured:
        response = api_client.post(
            "/api/send-message/", {"help_desk": str(help_desk.uuid), "message": "hi"}
        )
    assert response.status_code == 201
    selects = [q["sql"] for q in captured if q["sql"].startswith("SELECT")]
    tables = [sql.split(" FROM ", 1)[1].split()[0] for sql in selects]
    # The key and the desk, read once, in the message's transaction and under its row
    # lock, with what the new message's events nest: no separate client or organization
    # lookups, and the desk is not read back after its update.
    assert '"chat_client"' not in tables, selects
    assert '"core_organization"' not in tables, selects
    assert tables.count('"chat_helpdesk"') == 1, selects
    assert len(selects) <= 2, selects
    lookup = next(sql for sql in selects if sql.split(" FROM ", 1)[1].startswith('"chat_helpdesk"'))
    assert '"chat_client"' in lookup and '"core_organization"' in lookup, lookup
    assert '"chat_message"' not in lookup, lookup  # its last message is the new one
    if connection.vendor == "postgresql":
        assert "FOR UPDATE" in lookup, lookup
    begin = next(i for i, q in enumerate(captured) if q["sql"].startswith(("BEGIN", "SAVEPOINT")))
    assert captured[begin + 1]["sql"] == lookup, "the desk is read outside the transaction"


def _drf(serializer: Any, instance: Any) -> Any:
    return serializers.Serializer.to_representation(serializer, instance)


@pytest.mark.parametrize("context", [{}, {"view": "a list view's"}])
@pytest.mark.parametrize("zone", ["UTC", "Europe/Moscow"])
def test_plain_representation_is_drfs(agent, org, make_client, monkeypatch, zone, context):
    """The same output as DRF's, both with the class's shared plan (no context: events,
    a POST's answer) and with the instance's own (a view's context)."""
    desks = _desks_with_messages(org, make_client, agent, 2)
    HelpDesk.objects.filter(pk=desks[0].pk).update(last_message=None, assignee=agent.user)
    HelpDesk.objects.create(organization=org, client=make_client(org))  # never written to
    rows = list(HelpDesk.objects.select_related("client", "last_message", "organization"))
    messages = list(Message.objects.select_related("help_desk", "sender"))

    def everything() -> list[Any]:
        with timezone.override(zone):
            return [
                HelpDeskSerializer(rows, many=True, context=context).data,
                MessageSerializer(messages, many=True, context=context).data,
                ClientSerializer([r.client for r in rows], many=True, context=context).data,
                [HelpDeskSerializer(r, context=context).data for r in rows],
            ]

    plain = everything()
    monkeypatch.setattr(api.PlainRepresentation, "to_representation", _drf)
    assert everything() == plain
    assert plain[0][0]["created_at"].endswith("Z" if zone == "UTC" else "+03:00")
