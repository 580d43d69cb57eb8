"""Issue #10 "Done when": the chaos test. The platform runs exactly as the Procfile runs
it (honcho, every process, tests/procfile.py) under steady traffic (messages, a mailing
of 50 clients, trigger posts, two websockets that record every frame and resume with
`last_event_id`), and is hurt in turn:

1. Redis crashes and stays down 10 s (the embedded Valkey killed while its runner is
   paused, as in test_process_resilience), then comes back;
2. on a PostgreSQL run, the database is cut for 10 s through a TCP proxy (skipped on
   SQLite: a file next to the process cannot be cut);
3. the worker and the cron process are SIGKILLed once each (the real process, the
   child of `manage.py supervise`, which must start it again).

Then: no process exited except those killed, and those came back; every message and
mailing message reached the sender exactly once; every trigger batch was evaluated,
each counted once on one incident; every websocket client has every event (ids
contiguous across its reconnects, no duplicate) or was told `resync_required`.

SWEEP_GRACE is lowered so the chat sweeper re-sends a message whose enqueue the outage
lost within seconds instead of a minute. Slow (~2-3 min): run it by file.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from tests.conftest import wait_until
from tests.procfile import Platform, TcpProxy, alive, manage, parent_pid

OUTAGE = 10.0
MAILING_SIZE = 50
ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
# The demo rule "0001" fires on login/503 + login/404 posted together (escalation/demo.py).
TRIGGERS = {"triggers": [{"service": "login", "status": 503}, {"service": "login", "status": 404}]}

_CLIENTS = f"""
from chat.models import Client
from core.models import Organization
org = Organization.objects.get(slug="demo")
Client.objects.bulk_create(
    Client(organization=org, name=f"chaos {{i}}", phone=f"7955{{i:07d}}", operator_code="955",
           tag="chaos")
    for i in range({MAILING_SIZE})
)
"""

_TRIGGER_STATE = """
import json
from escalation.models import Incident, TriggerBatch
print(json.dumps({
    "batches": list(TriggerBatch.objects.values_list("id", flat=True)),
    "unevaluated": TriggerBatch.objects.filter(evaluated_at__isnull=True).count(),
    "incidents": list(Incident.objects.values("rule_id", "status", "occurrences")),
}))
"""


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def _supervisor(top: int) -> int:
    """The `manage.py supervise` process honcho started (maybe under a shell)."""
    pending = [top]
    while pending:
        pid = pending.pop()
        if "supervise" in _cmdline(pid):
            return pid
        pending.extend(_children(pid))
    raise AssertionError(f"no supervise process under {top}")


def _supervised_child(supervisor: int) -> int | None:
    """The pid of the real process (`manage.py run_worker`/`run_cron`) under `supervise`."""
    alive_children = [pid for pid in _children(supervisor) if alive(pid)]
    return alive_children[0] if len(alive_children) == 1 else None


class Traffic(threading.Thread):
    """A message every 0.5 s and a trigger post every second, until stopped; records what the
    platform accepted (201/202), and any answer that is neither that nor a documented 503."""

    def __init__(self, platform: Platform, desk: str) -> None:
        super().__init__(daemon=True)
        self.http = platform.http()
        self.integration = platform.http(platform.integration_key)
        self.desk = desk
        self.stop = threading.Event()
        self.messages: list[str] = []
        self.trigger_batches: list[int] = []
        self.unavailable = Counter[str]()
        self.unexpected: list[str] = []
        self.lost = 0  # requests without an answer (timeouts): their outcome is unknown

    def _post(self, client: httpx.Client, path: str, **kwargs: Any) -> httpx.Response | None:
        try:
            response = client.post(path, **kwargs)
        except httpx.HTTPError:
            self.lost += 1
            return None
        if response.status_code == 503:
            body = response.json()
            if body.get("error", {}).get("code") == "service_unavailable":
                self.unavailable[path] += 1
                return None
        if response.status_code not in (201, 202):
            self.unexpected.append(f"{path} {response.status_code} {response.text[:300]}")
            return None
        return response

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            sent = self._post(
                self.http,
                "/api/send-message/",
                data={"help_desk": self.desk, "message": f"chaos {n}"},
            )
            if sent is not None:
                self.messages.append(sent.json()["uuid"])
            if n % 2 == 0:
                posted = self._post(self.integration, "/api/triggers/", json=TRIGGERS)
                if posted is not None:
                    self.trigger_batches.extend(posted.json()["batches"])
            n += 1
            self.stop.wait(0.5)


class Listener(threading.Thread):
    """A websocket client that records every frame and, whenever the socket closes,
    connects again with `last_event_id` = the last id it received."""

    def __init__(self, platform: Platform) -> None:
        super().__init__(daemon=True)
        self.platform = platform
        self.stop = threading.Event()
        self.frames: list[dict[str, Any]] = []
        self.closes: list[int | None] = []
        self.connects = 0
        self.last: int | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            query = {} if self.last is None else {"last_event_id": self.last}
            try:
                with connect(self.platform.ws_url(**query), open_timeout=5) as conn:
                    self.connects += 1
                    while not self.stop.is_set():
                        try:
                            frame = json.loads(conn.recv(timeout=0.5))
                        except TimeoutError:
                            continue
                        self.frames.append(frame)
                        if frame.get("id"):
                            self.last = int(frame["id"])
                        elif frame["type"] == "hello" and (
                            self.last is None or self.frames[-2:-1] == [{"type": "resync_required"}]
                        ):
                            self.last = int(frame["last_event_id"])
            except ConnectionClosed as exc:
                self.closes.append(exc.rcvd.code if exc.rcvd else None)
            except (OSError, InvalidHandshake, TimeoutError):
                self.closes.append(None)
            # A client's reconnect pause, not a wait for work.
            self.stop.wait(0.3)

    def check(self) -> tuple[bool, int | None]:
        """(every event once and in order since each hello or resync; the last id)."""
        last: int | None = None
        resync = False
        for frame in self.frames:
            if frame["type"] == "resync_required":
                resync = True
            elif frame["type"] == "hello":
                if last is None or resync:
                    last = int(frame["last_event_id"])
                    resync = False
            elif frame.get("id"):
                assert last is not None, self.frames[:5]
                assert int(frame["id"]) == last + 1, (last, frame["id"], self.frames[-20:])
                last = int(frame["id"])
        return any(f["type"] == "resync_required" for f in self.frames), last


def _current_event_id(platform: Platform) -> int:
    with connect(platform.ws_url(), open_timeout=5) as conn:
        while True:
            frame = json.loads(conn.recv(timeout=5))
            if frame["type"] == "hello":
                return int(frame["last_event_id"])


def _statuses(http: httpx.Client, desk: str) -> dict[str, str]:
    history = http.get(f"/api/help-desks/{desk}/history/", params={"page_size": 500})
    if history.status_code != 200:
        return {}
    return {m["uuid"]: m["status"] for m in history.json()}


def _sender(platform: Platform, path: str) -> dict[str, Any]:
    return dict(httpx.get(f"{platform.env()['SENDER_URL']}{path}", timeout=5).json())


def _kill_supervised(platform: Platform, name: str) -> tuple[int, int]:
    """SIGKILL the real process under `supervise`; (its pid, its successor's pid)."""
    supervisor = _supervisor(platform.pids()[name])
    child = wait_until(lambda: _supervised_child(supervisor), timeout=10, interval=0.1)
    os.kill(child, signal.SIGKILL)
    successor = wait_until(
        lambda: (pid := _supervised_child(supervisor)) not in (None, child) and pid,
        timeout=30,
        interval=0.1,
    )
    return child, int(successor)


@pytest.mark.timeout(240)
def test_chaos_every_piece_of_work_is_done_once(tmp_path: Path) -> None:
    proxy: TcpProxy | None = None
    if ON_POSTGRES:
        server = urlsplit(os.environ["DATABASE_URL"])
        proxy = TcpProxy(server.hostname or "127.0.0.1", server.port or 5432)
        proxy.up()
    platform = Platform(
        tmp_path,
        db_proxy=proxy,
        # A request waits DB_POOL_TIMEOUT for a pooled connection before its 503.
        extra_env={"SWEEP_GRACE": "3", "DB_POOL_TIMEOUT": "2"},
    )
    traffic: Traffic | None = None
    listeners: list[Listener] = []
    try:
        platform.prepare()
        manage(platform.env(), "shell", "-c", _CLIENTS)
        platform.start()
        http = platform.http()
        desks = http.get("/api/help-desks/", params={"organization": "demo"})
        desk = str(desks.json()[0]["uuid"])
        pids = platform.pids()
        assert set(pids) >= {"redis.1", "web.1", "worker.1", "cron.1", "sender.1"}, pids

        # given steady traffic, two listening websockets and a mailing due during the outage
        listeners = [Listener(platform), Listener(platform)]
        for listener in listeners:
            listener.start()
        wait_until(lambda: all(li.last is not None for li in listeners), timeout=15)
        traffic = Traffic(platform, desk)
        traffic.start()
        start_at = datetime.now().astimezone() + timedelta(seconds=4)
        created = http.post(
            "/api/mailings/",
            json={
                "organization": "demo",
                "name": "chaos",
                "start_at": start_at.isoformat(),
                "end_at": (start_at + timedelta(hours=1)).isoformat(),
                "text": "Hello {{ name }}",
                "tags": ["chaos"],
            },
        )
        assert created.status_code == 201, created.text
        mailing_id = created.json()["id"]
        wait_until(lambda: len(traffic.messages) >= 3, timeout=15)

        # when Redis crashes and stays down for 10 s (its runner paused, so no restart)
        valkey = platform.valkey_pid()
        runner = parent_pid(valkey)
        os.kill(runner, signal.SIGSTOP)
        os.kill(valkey, signal.SIGKILL)
        try:
            down_until = time.monotonic() + OUTAGE
            wait_until(lambda: time.monotonic() >= down_until, timeout=OUTAGE + 5, interval=0.2)
        finally:
            os.kill(runner, signal.SIGCONT)  # Valkey restarts from its append-only file
        wait_until(platform.healthy, timeout=30, interval=0.2)
        accepted = len(traffic.messages)
        wait_until(lambda: len(traffic.messages) >= accepted + 3, timeout=30)

        # and (PostgreSQL) the database is unreachable for 10 s
        if proxy is not None:
            proxy.down()
            try:
                down_until = time.monotonic() + OUTAGE
                wait_until(lambda: time.monotonic() >= down_until, timeout=OUTAGE + 5)
            finally:
                proxy.up()
            wait_until(platform.healthy, timeout=30, interval=0.2)
            accepted = len(traffic.messages)
            wait_until(lambda: len(traffic.messages) >= accepted + 3, timeout=30)

        # and the worker, then the cron process, are SIGKILLed
        worker, new_worker = _kill_supervised(platform, "worker.1")
        cron, new_cron = _kill_supervised(platform, "cron.1")
        accepted = len(traffic.messages)
        wait_until(lambda: len(traffic.messages) >= accepted + 3, timeout=30)
        traffic.stop.set()
        traffic.join(15)

        # then no process exited except those killed, and those came back (supervised)
        assert platform.process is not None and platform.process.poll() is None
        assert platform.pids() == pids, platform.output()[-3000:]
        assert all(alive(pid) for pid in pids.values()), platform.output()[-3000:]
        assert not alive(worker) and alive(new_worker)
        assert not alive(cron) and alive(new_cron)
        assert "exited with code" not in platform.output()
        for command in ("run_worker", "run_cron"):
            restarts = [
                line
                for line in platform.lines
                if "process_restarting" in line and f"command={command}" in line
            ]
            assert len(restarts) == 1, (command, restarts)
        assert traffic.unexpected == [], traffic.unexpected
        assert traffic.unavailable["/api/triggers/"] > 0, "triggers never saw the outage"

        # and every message accepted was sent (the sweeper re-sends those whose enqueue
        # the outage lost), the mailing's 50 too
        wanted = set(traffic.messages)

        def all_sent() -> bool:
            statuses = _statuses(http, desk)
            missing = {u: statuses.get(u) for u in wanted if statuses.get(u) != "sent"}
            print("not sent yet:", missing)
            return not missing

        wait_until(all_sent, timeout=90, interval=1.0)

        def mailing_done() -> dict[str, Any] | None:
            got = http.get(f"/api/mailings/{mailing_id}/").json()
            print("mailing:", got.get("status"), got.get("counts"))
            return got if got["status"] == "finished" else None

        done = wait_until(mailing_done, timeout=90, interval=1.0)
        assert done["counts"]["sent"] == done["counts"]["total"] == MAILING_SIZE, done

        # exactly once at the sender: one msgId per mailing recipient (below), and a msgId
        # accepted twice only as the replay of a lost answer: a worker SIGKILLed, or the
        # database cut, between the sender's answer and its record loses the answer, and
        # the design retries with the same msgId (SENDER_RETRY_ON_LOST_ANSWER), which the
        # sender's idempotency key absorbs. At most one such replay per fault injected (a
        # CI trial saw one on PostgreSQL, under twice the usual load; every other run none).
        stats = _sender(platform, "/stats")
        faults = 3 if ON_POSTGRES else 2  # Redis down, the worker killed, (the database cut)
        print("sender stats:", stats)
        assert stats["duplicates"] <= faults, stats
        for i in range(MAILING_SIZE):
            assert len(_sender(platform, f"/phones/7955{i:07d}")["ids"]) == 1, i

        # every trigger batch accepted was evaluated, each counted once, on one incident
        def triggers_state() -> dict[str, Any] | None:
            printed = manage(platform.env(), "shell", "-c", _TRIGGER_STATE)
            state = json.loads(printed.strip().splitlines()[-1])
            print("triggers:", state, traffic.trigger_batches, traffic.unavailable, traffic.lost)
            return state if state["unevaluated"] == 0 else None

        state = wait_until(triggers_state, timeout=60, interval=1.0)
        assert traffic.trigger_batches, "no trigger post was accepted"
        # (a post whose answer was lost may have stored its batch: counted all the same)
        assert set(traffic.trigger_batches) <= set(state["batches"]), state
        assert len(state["batches"]) <= len(traffic.trigger_batches) + traffic.lost, state
        assert len(state["incidents"]) == 1, state
        assert state["incidents"][0]["occurrences"] == len(state["batches"]), state

        # and every websocket client has every event (or was told to resync)
        latest = _current_event_id(platform)
        wait_until(lambda: all((li.last or 0) >= latest for li in listeners), timeout=30)
        for listener in listeners:
            listener.stop.set()
            listener.join(10)
            resynced, last = listener.check()
            events = [f["id"] for f in listener.frames if f.get("id")]
            print("listener:", listener.connects, listener.closes, resynced, len(events), last)
            assert last == latest or resynced, (last, latest)
            assert listener.connects >= 2, "the outage never closed the socket"
            assert 4500 in listener.closes, listener.closes
    finally:
        if traffic is not None:
            traffic.stop.set()
        for listener in listeners:
            listener.stop.set()
        platform.close()
        if proxy is not None:
            proxy.down()
        print(platform.output()[-8000:])


@pytest.mark.skipif(ON_POSTGRES, reason="the database phase ran in the test above")
def test_chaos_database_phase_needs_postgres() -> None:
    """Says, in the test report, that the SQLite run left the database phase out."""
    pytest.skip(
        "the database outage phase runs only on PostgreSQL (DATABASE_URL=postgres://...):"
        " SQLite is a file next to the process, it cannot be cut"
    )
