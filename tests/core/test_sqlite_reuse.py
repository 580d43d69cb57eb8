"""SQLite connections a process reuses (core/dbpool.py, issue 12 item 4).

Each request's sync code runs in a new thread under ASGI, so without reuse every request
opened (and parsed the schema of) a new SQLite connection and closed it at its end.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from core import dbpool
from core.dbpool import PooledSQLiteConnection


def _connect(path: Path) -> Any:
    return sqlite3.connect(str(path), check_same_thread=False, factory=PooledSQLiteConnection)


def test_a_closed_connection_is_the_next_ones_with_what_was_committed(tmp_path):
    # given
    first = _connect(tmp_path / "a.sqlite3")
    first.execute("CREATE TABLE t (n INTEGER)")
    first.execute("INSERT INTO t VALUES (1)")
    first.commit()
    first.close()
    # when
    second = _connect(tmp_path / "a.sqlite3")
    # then
    assert second is first
    assert second.execute("SELECT n FROM t").fetchall() == [(1,)]
    other = _connect(tmp_path / "a.sqlite3")  # the first is taken: a new one
    assert other is not second
    second.close()
    other.close()


def test_a_transaction_left_open_is_rolled_back_before_reuse(tmp_path):
    conn = _connect(tmp_path / "b.sqlite3")
    conn.execute("CREATE TABLE t (n INTEGER)")
    conn.commit()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    again = _connect(tmp_path / "b.sqlite3")
    assert again is conn
    assert not again.in_transaction
    assert again.execute("SELECT count(*) FROM t").fetchone() == (0,)
    # The write lock went with the rollback: another connection can write.
    writer = sqlite3.connect(str(tmp_path / "b.sqlite3"), timeout=0)
    writer.execute("INSERT INTO t VALUES (2)")
    writer.commit()
    writer.close()
    again.close()


def test_closing_twice_pools_it_once(tmp_path):
    conn = _connect(tmp_path / "c.sqlite3")
    conn.execute("SELECT 1")
    conn.close()
    conn.close()
    assert _connect(tmp_path / "c.sqlite3") is conn
    assert _connect(tmp_path / "c.sqlite3") is not conn


def test_a_file_replaced_at_the_same_path_gets_a_new_connection(tmp_path):
    path = tmp_path / "d.sqlite3"
    old = _connect(path)
    old.execute("CREATE TABLE t (n INTEGER)")
    old.commit()
    old.close()
    os.remove(path)
    fresh = sqlite3.connect(str(path))
    fresh.execute("CREATE TABLE u (n INTEGER)")
    fresh.close()
    new = _connect(path)
    assert new is not old
    assert new.execute("SELECT name FROM sqlite_master").fetchall() == [("u",)]
    new.close()


def test_at_most_pool_size_idle_connections_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(dbpool, "_size", 2)
    path = tmp_path / "e.sqlite3"
    conns = [_connect(path) for _ in range(3)]
    for conn in conns:
        conn.execute("SELECT 1")
        conn.close()
    with pytest.raises(sqlite3.ProgrammingError):  # the third was really closed
        conns[2].execute("SELECT 1")
    assert {id(_connect(path)), id(_connect(path))} == {id(conns[0]), id(conns[1])}


def test_memory_databases_are_never_pooled():
    conn = sqlite3.connect(":memory:", factory=PooledSQLiteConnection)
    conn.close()
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's connection reuse")
def test_each_request_thread_reuses_the_connection_the_last_one_closed():
    """As under daphne: a new thread per request, Django's close at its end."""
    seen: list[int] = []

    def request() -> None:
        from django.db import connection as thread_connection

        with thread_connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM core_organization")
        seen.append(id(thread_connection.connection))
        thread_connection.close()

    for _ in range(3):
        thread = threading.Thread(target=request)
        thread.start()
        thread.join()
    assert len(set(seen)) == 1, seen


def test_writers_of_one_process_queue_on_its_lock_not_on_sqlites(tmp_path):
    """The second writer waits for the first one's COMMIT on the process's lock: with
    SQLite's own timeout at 0 it would fail at once with 'database is locked'."""
    path = tmp_path / "w.sqlite3"
    first = _connect(path)
    first.isolation_level = None
    first.execute("CREATE TABLE t (n INTEGER)")
    second = sqlite3.connect(
        str(path), timeout=0, check_same_thread=False, factory=PooledSQLiteConnection
    )
    second.isolation_level = None
    second._timeout = 30.0  # the process's lock waits; SQLite's would refuse at once
    first.execute("BEGIN IMMEDIATE")
    first.execute("INSERT INTO t VALUES (1)")
    outcome: list[Any] = []

    def write() -> None:
        try:
            second.execute("BEGIN IMMEDIATE")
            second.execute("INSERT INTO t VALUES (2)")
            second.commit()
            outcome.append("committed")
        except sqlite3.Error as exc:
            outcome.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(0.5)  # not a sleep to wait for work: it must NOT finish while blocked
    assert thread.is_alive() and outcome == []
    first.commit()
    thread.join(30)
    assert outcome == ["committed"]
    assert first.execute("SELECT n FROM t ORDER BY n").fetchall() == [(1,), (2,)]
    first.close()
    second.close()


def test_a_commit_a_rollback_or_a_failed_begin_frees_the_writer_lock(tmp_path):
    path = tmp_path / "x.sqlite3"
    conn = _connect(path)
    conn.isolation_level = None
    conn.execute("CREATE TABLE t (n INTEGER)")
    writer = None
    for end in (conn.commit, conn.rollback):
        conn.execute("BEGIN IMMEDIATE")
        writer = dbpool._writers[conn._file]
        assert writer.locked()
        end()
        assert not writer.locked()
    # Another process's writer (a connection outside this process's queue) holds SQLite's.
    foreign = sqlite3.connect(str(path), isolation_level=None)
    foreign.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(
        str(path), timeout=0, check_same_thread=False, factory=PooledSQLiteConnection
    )
    other.isolation_level = None
    with pytest.raises(sqlite3.OperationalError):
        other.execute("BEGIN IMMEDIATE")
    assert writer is not None and not writer.locked()
    foreign.rollback()
    foreign.close()
    conn.close()
    other.close()


@pytest.mark.django_db(transaction=True)
def test_djangos_atomic_blocks_take_the_writer_queue():
    # Django runs BEGIN IMMEDIATE on a cursor of its own class, not through the
    # connection's execute: the queue must see it there (it once did not, and the queue
    # was only ever taken by the tests above).
    if connection.vendor != "sqlite":
        pytest.skip("the writer queue is SQLite's")
    with transaction.atomic():
        connection.cursor().execute("SELECT 1")
        raw = connection.connection
        assert isinstance(raw, PooledSQLiteConnection)
        assert raw._writer is not None and raw._writer.locked()
    assert raw._writer is None


def test_the_writer_queue_serves_writers_in_arrival_order():
    queue = dbpool.WriterQueue()
    assert queue.acquire(timeout=1)
    order: list[int] = []
    threads = []
    for n in range(5):

        def wait(n: int = n) -> None:
            assert queue.acquire(timeout=30)
            order.append(n)
            queue.release()

        thread = threading.Thread(target=wait)
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 10
        while len(queue._waiting) < n + 1:  # poll: this one is queued before the next starts
            assert time.monotonic() < deadline
            time.sleep(0.001)
    queue.release()
    for thread in threads:
        thread.join(30)
    assert order == [0, 1, 2, 3, 4]
    assert not queue.locked()
    # A wait that ends unserved leaves the queue, and the lock stays with its holder.
    assert queue.acquire(timeout=1)
    assert not queue.acquire(timeout=0.01)
    assert queue.locked() and not queue._waiting
    queue.release()
    assert not queue.locked()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's connection reuse")
def test_a_forked_child_uses_none_of_its_parents_connections():
    from django.db import connection as main_connection

    with main_connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    parents = id(main_connection.connection)
    main_connection.close()  # now idle in the pool
    with main_connection.cursor() as cursor:  # and open again: the same one
        cursor.execute("SELECT 1")
    assert id(main_connection.connection) == parents
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        try:
            with main_connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM core_organization")
            fresh = id(main_connection.connection) != parents and not dbpool._idle
            os.write(write, b"1" if fresh else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"1"
