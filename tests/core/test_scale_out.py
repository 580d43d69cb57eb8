"""The production topology of docs/deploy.md on loopback (issue 12 item 3).

HAProxy (contrib/deploy/haproxy.cfg with the test's ports) in front of 3 daphne web
processes, 2 RQ workers, cron, PostgreSQL, and a Redis primary + replica + 3 sentinels
(`REDIS_URL=redis+sentinel://...`). Agents' websockets connect through the balancer
and reconnect like the documented client; a sender thread posts messages through it.

- (a) every message posted reaches every socket exactly once, whichever process took it;
- (b) SIGKILL one web process: its sockets come back through the balancer on the others
  and, resuming with `last_event_id`, miss nothing and get nothing twice;
- (c) SIGKILL the Redis primary: every socket ends with every event or a
  `resync_required` (the log's new epoch, docs/realtime.md), and every message is
  accepted by the sender exactly once (no job lost, none run twice).

Skipped without haproxy or redis-server, and on SQLite (five processes writing one
SQLite file is not the topology under test): run it with DATABASE_URL=postgres://...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.db import connection

from core.redis import get_redis
from tests.conftest import ROOT, free_port, subprocess_env, wait_until
from tests.redis_procs import sentinel_setup
from tests.scale_out import Socket, established, haproxy

HAPROXY = shutil.which("haproxy")
REDIS_SERVER = shutil.which("redis-server")
SOCKETS_PER_AGENT = 15
AGENTS = 2  # each costs a password hash (seconds on a busy CI machine)

# Module marks, not a fixture: a skip costs nothing (no simulator, no database).
pytestmark = [
    pytest.mark.skipif(HAPROXY is None, reason="no haproxy binary (apt-get install -y haproxy)"),
    pytest.mark.skipif(
        REDIS_SERVER is None,
        reason="no redis-server binary for the primary, replica and sentinels",
    ),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="the scale-out topology runs on PostgreSQL (set DATABASE_URL=postgres://...)",
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def cron() -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def _start(**env: str) -> None:
        started.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "run_cron"], cwd=ROOT, env=subprocess_env(**env)
            )
        )

    yield _start
    for process in started:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        if process.poll() is None:
            process.kill()


class Traffic:
    """Posts a message every `interval` through the balancer until stopped; keeps the
    uuid of every one the platform accepted (201) and counts the refused ones."""

    def __init__(self, http: Any, help_desk: Any, interval: float = 0.15) -> None:
        self.http, self.help_desk, self.interval = http, help_desk, interval
        self.accepted: list[str] = []
        self.refused = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                response = self.http.post(
                    "/api/send-message/",
                    data={"help_desk": str(self.help_desk.uuid), "message": f"m{n}"},
                )
            except Exception:
                self.refused += 1
            else:
                if response.status_code == 201:
                    self.accepted.append(response.json()["uuid"])
                else:
                    self.refused += 1
            self.stop.wait(self.interval)


def _all_received(sockets: list[Socket], uuids: list[str]) -> bool:
    wanted = set(uuids)
    return all(wanted <= set(s.messages()) for s in sockets)


def _poll(predicate: Any, state: Any, timeout: float = 40) -> None:
    try:
        wait_until(predicate, timeout=timeout, interval=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {state()}") from None


def _state(sockets: list[Socket], ports: list[int], traffic: Traffic) -> str:
    wanted = set(traffic.accepted)
    missing = [len(wanted - set(s.messages())) for s in sockets]
    return (
        f"established {[established(p) for p in ports]}, connects "
        f"{[s.connects for s in sockets]}, missing {missing}, resyncs "
        f"{[s.resyncs() for s in sockets]}, gaps {[s.gaps()[:2] for s in sockets if s.gaps()]}"
        f", posted {len(wanted)}, refused {traffic.refused}"
    )


def test_scale_out(
    tmp_path: Any,
    settings: Any,
    sender: Any,
    start_web: Any,
    start_worker: Any,
    cron: Any,
    make_agent: Any,
    org: Any,
    help_desk: Any,
) -> None:
    from chat.models import Message

    started = time.monotonic()
    assert HAPROXY is not None and REDIS_SERVER is not None
    agents = [make_agent(f"agent{n}", org) for n in range(AGENTS)]
    with sentinel_setup(REDIS_SERVER, tmp_path / "redis") as redis_nodes:
        settings.REDIS_URL = redis_nodes.url
        get_redis.cache_clear()
        env = {
            "REDIS_URL": redis_nodes.url,
            "WEB_PROXY_HEADER": "X-Real-IP",
            "SWEEP_GRACE": "2",  # a job lost with the primary is re-driven soon
            "LOG_LEVEL": "ERROR",
        }
        webs = [start_web(**env) for _ in range(3)]
        ports = [int(web.url.rsplit(":", 1)[1]) for web in webs]
        workers = [start_worker(**env) for _ in range(2)]
        cron(**env)
        stop = threading.Event()
        sockets: list[Socket] = []
        with haproxy(HAPROXY, tmp_path, free_port(), ports) as base:
            try:
                ws_base = base.replace("http://", "ws://") + f"/ws/chat/{org.slug}/?token="
                for agent in agents:
                    for _ in range(SOCKETS_PER_AGENT):
                        sockets.append(Socket(ws_base + agent.key, stop))
                        sockets[-1].start()
                wait_until(lambda: all(s.hellos() for s in sockets), timeout=30)
                # the balancer spread them over the three processes (leastconn)
                spread = [established(port) for port in ports]
                assert all(n >= len(sockets) // 6 for n in spread), spread
                print(f"setup {time.monotonic() - started:.1f}s, sockets per process {spread}")

                # (a) steady traffic through the balancer: each message reaches every
                # socket once, whichever process took the POST
                traffic = Traffic(agents[0].http(base), help_desk)
                traffic.thread.start()
                wait_until(lambda: len(traffic.accepted) >= 10, timeout=30)
                first = list(traffic.accepted)
                state = lambda: _state(sockets, ports, traffic)  # noqa: E731
                _poll(lambda: _all_received(sockets, first), state)

                # (b) SIGKILL one web process: its sockets come back on the others
                victim = webs[0]
                moved = [s for s in sockets if s.connects == 1]  # all, so far
                victim.process.send_signal(signal.SIGKILL)
                victim.process.wait(10)
                killed_at = len(traffic.accepted)
                wait_until(lambda: len(traffic.accepted) >= killed_at + 10, timeout=40)
                _poll(
                    lambda: (
                        established(ports[0]) == 0
                        and sum(established(p) for p in ports[1:]) >= len(sockets)
                        and _all_received(sockets, list(traffic.accepted))
                    ),
                    lambda: _state(sockets, ports, traffic),
                )
                # every socket of the killed process came back (through the balancer)
                assert sum(s.connects > 1 for s in moved) >= spread[0] - 1, spread
                for s in sockets:
                    assert s.resyncs() == 0, s.timeline[-5:]
                    assert s.gaps() == [], s.gaps()
                    assert len(s.messages()) == len(set(s.messages()))
                print(f"web kill done {time.monotonic() - started:.1f}s")

                # (c) SIGKILL the Redis primary; the sentinels promote the replica
                primary_pid = redis.Redis(port=redis_nodes.primary).info("server")["process_id"]
                os.kill(int(primary_pid), signal.SIGKILL)
                wait_until(lambda: redis_nodes.master_port() == redis_nodes.replica, timeout=40)
                # each socket is closed (4500), comes back, and (the log's new epoch) is
                # told to resync, then says hello; what it misses before is announced
                _poll(
                    lambda: all(s.resumed_after_resync() for s in sockets),
                    lambda: _state(sockets, ports, traffic),
                )
                promoted = len(traffic.accepted)
                wait_until(lambda: len(traffic.accepted) >= promoted + 10, timeout=40)
                traffic.stop.set()
                traffic.thread.join(30)
                final = traffic.accepted[promoted:]
                # every socket: every event, or a resync_required and every event since
                _poll(lambda: _all_received(sockets, final), state)
                print(f"redis failover done {time.monotonic() - started:.1f}s")

                # no job lost or run twice: every message (also one whose POST failed
                # after its commit) is accepted by the sender exactly once, the ones whose
                # job was lost with the primary re-driven by cron's sweeper
                total = Message.objects.filter(help_desk=help_desk).count()
                assert total >= len(traffic.accepted)
                wait_until(lambda: sender.stats()["unique"] >= total, timeout=60, interval=0.5)
            finally:
                stop.set()
                # stop every process at once (the fixtures then wait for each)
                for process in [w.process for w in webs] + [w.process for w in workers]:
                    if process.poll() is None:
                        process.terminate()
        for s in sockets:
            assert s.gaps() == [], s.gaps()
            assert len(s.messages()) == len(set(s.messages())), "a message twice"
            if not s.resyncs():
                assert set(traffic.accepted) <= set(s.messages())

        stats = sender.stats()
        assert stats["duplicates"] == 0, stats
        assert stats["accepted_total"] == total, stats
        print(
            f"wall {time.monotonic() - started:.1f}s: {total} messages, "
            f"{traffic.refused} refused, {len(sockets)} sockets"
        )
    get_redis.cache_clear()
