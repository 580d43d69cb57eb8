"""The PostgreSQL connection pool of a web process (issue 10 item 5).

Under ASGI each request's sync code runs in a thread of its own; with CONN_MAX_AGE each
thread kept its own connection, so one web process under a few dozen concurrent clients
went past max_connections and answered 5xx ("too many clients already"). With the pool
a process never holds more than DB_POOL_MAX connections. Load figures (requests/s, p99,
the old setting's 5xx) are in BENCHMARKS.md (contrib/bench/rest_load.py), not here.
"""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection, connections

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="connection pooling is PostgreSQL's (DATABASE_URL=postgres://...); SQLite has none",
    ),
]

POOL_MAX = 4
CLIENTS = 32


def _database_url(application_name: str) -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{auth}@{host}/{db['NAME']}?application_name={application_name}"


def _backends(application_name: str) -> list[int]:
    """Server processes (pids) of connections opened under `application_name`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name]
        )
        return [int(pid) for (pid,) in cursor.fetchall()]


@pytest.fixture
def _no_jobs_left(redis_client: Any) -> Any:
    """No worker runs here: the 96 delivery jobs the posts enqueue must not wait in the
    queue for a later test's worker (which would spend its time on them)."""
    yield
    redis_client.flushdb()


@pytest.mark.usefixtures("_no_jobs_left")
def test_concurrent_requests_share_a_small_pool_without_5xx(
    start_web: Any, agent: Any, help_desk: Any
) -> None:
    # given: one web process with a pool of at most 4 connections
    name = f"pool-test-{uuid.uuid4().hex[:8]}"
    web = start_web(DATABASE_URL=_database_url(name), DB_POOL_MIN="1", DB_POOL_MAX=str(POOL_MAX))
    seen: set[int] = set()
    peak = [0]
    stop = threading.Event()

    def watch() -> None:
        try:
            while not stop.is_set():
                pids = _backends(name)
                seen.update(pids)
                peak[0] = max(peak[0], len(pids))
                stop.wait(0.02)
        finally:  # this thread's connection goes back (the test database is dropped)
            connections.close_all()

    def client(n: int) -> list[int]:
        statuses = []
        with agent.http(web.url) as http:
            for round_ in range(3):
                listed = http.get(f"/api/help-desks/?organization={agent.organization.slug}")
                sent = http.post(
                    "/api/send-message/",
                    data={"help_desk": str(help_desk.uuid), "message": f"m{n}.{round_}"},
                )
                statuses += [listed.status_code, sent.status_code]
        return statuses

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    # when: 32 clients send their requests at once
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            statuses = [s for batch in pool.map(client, range(CLIENTS)) for s in batch]
    finally:
        stop.set()
        watcher.join()

    # then: every request succeeded, and the process never held more than the pool's max
    assert sorted(set(statuses)) == [200, 201], statuses
    assert len(statuses) == CLIENTS * 6
    assert 1 <= peak[0] <= POOL_MAX, peak[0]
    # (and the connections were reused, not one per request's thread)
    assert len(seen) <= POOL_MAX, sorted(seen)


def test_pool_settings_reach_django() -> None:
    from django.conf import settings

    options = settings.DATABASES["default"]["OPTIONS"]
    assert options["pool"]["max_size"] == settings.DB_POOL_MAX > 0
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] == 0  # required with a pool


def test_forked_child_opens_its_own_connections() -> None:
    """An RQ work horse is a fork: it must not query on its parent's pooled socket."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (parent_backend,) = cursor.fetchone()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the server process it talks to, then leave at once
        code = 1
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                os.write(write, str(cursor.fetchone()[0]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_backend = int(pipe.read() or 0)
    assert os.waitpid(pid, 0)[1] == 0
    assert child_backend not in (0, parent_backend)
    with connection.cursor() as cursor:  # and the parent's connection is intact
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone() == (parent_backend,)
