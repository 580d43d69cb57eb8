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


class _Subscriber:
    def deliver(self, batch: Any) -> bool:
        return True

    def drop(self, reason: str) -> None:
        pass


def test_a_storm_of_joins_shares_the_log_open_but_never_one_sent_before_it(
    redis_client: Any, monkeypatch: Any
) -> None:
    from core import events, realtime

    organization_id = 970_001
    redis_client.delete(*events._keys(organization_id))
    opens: list[int] = []
    real_open = realtime.event_log_open_async
    held = asyncio.Event()

    async def counted_open(client: Any, *, organization_id: int) -> int:
        opens.append(organization_id)
        if len(opens) == 1:
            await held.wait()  # the first open stays in flight until released
        return await real_open(client, organization_id=organization_id)

    monkeypatch.setattr(realtime, "event_log_open_async", counted_open)

    async def storm() -> tuple[int | None, int, list[int | None]]:
        hub = realtime.Hub()
        try:
            first = asyncio.ensure_future(hub.join(organization_id, _Subscriber()))
            while not opens:
                await asyncio.sleep(0)
            # given one open in flight, 300 joins arrive: none may take its answer (it
            # was sent before they subscribed), so they share the next one
            event_id = events.event_append(
                organization_id=organization_id, event_type="new_message", data=events.serialize({})
            )
            later = [
                asyncio.ensure_future(hub.join(organization_id, _Subscriber())) for _ in range(300)
            ]
            await asyncio.sleep(0.05)
            held.set()
            positions = await asyncio.gather(*later)
            return await first, event_id, positions
        finally:
            await hub._reset()  # closes its pub/sub connection

    first, event_id, positions = asyncio.run(storm())
    # then two round trips for 301 joins, and every later join sees the event appended
    # after the first open was sent
    assert len(opens) == 2
    assert set(positions) == {event_id}
    assert first is not None and first <= event_id
