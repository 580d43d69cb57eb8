"""A reconnect storm is admitted in batches (chat/ws_auth.py `admit_async`): the same
verdicts as `admit`, each distinct token and (principal, organization) looked up once per
batch, and reused by the batches of the next second (issue 12 item 5; the figures:
contrib/bench/ws_reconnect.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chat import ws_auth
from core.services import agent_create, api_key_create, membership_add

pytestmark = pytest.mark.django_db(transaction=True)


def _scope(slug: str, token: str) -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": f"/ws/chat/{slug}/",
        "query_string": f"token={token}".encode(),
        "headers": [(b"host", b"chat.example.com")],
        "client": ("203.0.113.7", 50000),
        "url_route": {"args": (), "kwargs": {"organization": slug}},
    }


def test_a_storm_is_admitted_as_one_by_one_with_one_lookup_per_distinct_token(
    make_org: Any, monkeypatch: Any
) -> None:
    acme, globex = make_org("acme"), make_org("globex")
    tokens = []
    for n in range(3):
        user = agent_create(username=f"agent{n}", password=None)
        membership_add(organization=acme, user=user, role="agent")
        tokens.append(api_key_create(name=f"agent{n}", user=user)[1])
    _, integration = api_key_create(name="dash", organization=globex, scopes=["read"])
    scopes = [_scope("acme", tokens[i % 3]) for i in range(60)]
    scopes += [_scope("globex", tokens[0]), _scope("acme", "not-a-key")]
    scopes += [_scope("globex", integration), _scope("acme", integration)]

    # one by one, as before
    expected = [(a.code, a.grant and a.grant.organization_id) for a in map(ws_auth.admit, scopes)]

    lookups: list[str] = []
    organizations: list[str] = []
    key_lookup, org_lookup = ws_auth.api_key_lookup, ws_auth.organization_find_for_principal

    def counted_key_lookup(raw: str) -> Any:
        lookups.append(raw)
        return key_lookup(raw)

    def counted_org_lookup(*, principal: Any, slug: str) -> Any:
        organizations.append(slug)
        return org_lookup(principal=principal, slug=slug)

    monkeypatch.setattr(ws_auth, "api_key_lookup", counted_key_lookup)
    monkeypatch.setattr(ws_auth, "organization_find_for_principal", counted_org_lookup)

    async def storm() -> list[ws_auth.Admission]:
        return await asyncio.gather(*(ws_auth.admit_async(s) for s in scopes))

    ws_auth.forget_recent()  # nothing from another test's batches
    admitted = asyncio.run(storm())

    assert [(a.code, a.grant and a.grant.organization_id) for a in admitted] == expected
    assert expected.count((0, acme.pk)) == 60 and (4403, None) in expected
    assert (4401, None) in expected and (0, globex.pk) in expected
    # every connect arrived before the first batch ran: one lookup per distinct token
    # (3 agents, the integration key, the bad one) and per distinct (principal, slug)
    assert sorted(set(lookups)) == sorted(lookups) and len(lookups) == 5
    assert len(organizations) == 6  # 3 agents in acme, agent0 in globex, the key twice

    # the next storm within RECENT_SECONDS reuses those answers; once a recheck closed a
    # socket (forget_recent), everything is looked up again
    monkeypatch.setattr(ws_auth, "RECENT_SECONDS", 60.0)
    again = asyncio.run(storm())
    assert [(a.code, a.grant and a.grant.organization_id) for a in again] == expected
    assert len(lookups) == 5 and len(organizations) == 6
    ws_auth.forget_recent()
    asyncio.run(storm())
    assert len(lookups) == 10 and len(organizations) == 12
