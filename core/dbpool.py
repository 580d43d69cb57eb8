"""Database connections a process reuses: PostgreSQL's pool across `fork()`, and SQLite's.

PostgreSQL. Django keeps its psycopg pools on the backend class
(`DatabaseWrapper._connection_pools`), so a forked child (RQ forks a work horse per job)
inherits its parent's pool: its connections (sockets shared with the parent's) and no
worker threads. A child that used them would interleave its queries with the parent's on
the same socket. After a fork the child therefore forgets the inherited pools and
connections, and opens its own on first use. It only forgets them: closing would send
PostgreSQL a Terminate on the parent's sockets, and letting them be garbage-collected
would too (libpq closes on free), so the child keeps references until it exits.

SQLite (issue 12 item 4). Under ASGI Django's connections belong to each request (they
live in its context, whichever thread runs its sync code: core/request_threads.py lends
it a reused one), so each request opened a new SQLite connection and closed it at its
end: the open, the schema parse on its first statement (every table and index of the
database) and, when it was the last connection, a WAL checkpoint and the WAL file's
deletion, which the next request recreated. That was about half of a simple request's
time. Django has no pool for SQLite, but passes `DATABASES[...]["OPTIONS"]` to
`sqlite3.connect`, whose documented `factory` argument names the connection class:
`PooledSQLiteConnection` is that class.

1. `sqlite3.connect(..., factory=PooledSQLiteConnection)` hands back a connection this
   process closed earlier with the same arguments, if one is idle and its file is still
   the same file (inode), else opens a new one. Django then sets it up as usual
   (functions, PRAGMAs, init_command: idempotent).
2. Django's `close()` (at the end of each request, CONN_MAX_AGE=0) calls the
   connection's `close()`: it rolls back anything left open and keeps the connection for
   the next caller, up to `SQLITE_POOL_SIZE` idle ones per database (beyond: really
   closed). Django never uses a connection after closing it.
3. A forked child (an RQ work horse) forgets the idle and open connections it inherited
   (SQLite forbids using a connection across fork) without closing them, as for
   PostgreSQL, and opens its own.
4. Writers of one process queue, in arrival order (`WriterQueue`), before
   `BEGIN IMMEDIATE` (what Django runs for `atomic` with transaction_mode IMMEDIATE)
   and leave the queue at COMMIT or ROLLBACK: SQLite's busy handler makes a waiting
   writer sleep in steps of up to 100 ms however soon the lock frees, so 16 concurrent
   writers left the database idle between transactions (send-message p99 of seconds).
   Writers of other processes (workers) still meet SQLite's own lock and SQLITE_TIMEOUT.
   A writer that waited `timeout` seconds in the queue goes ahead to SQLite's lock, so
   nothing waits forever on it.

A connection to a file that was replaced (a test database recreated at the same path)
is dropped, not closed: closing the last connection of a WAL database deletes the
`-wal` file *by name*, which would now be the new database's.
"""

from __future__ import annotations

import collections
import os
import sqlite3
import threading
from typing import Any

# Objects inherited from the parent or dropped, kept alive (never closed) for the
# process's life: see the module docstring.
_INHERITED: list[Any] = []

# Idle SQLite connections per connect() arguments; the size is read from settings once.
_idle: dict[str, list[PooledSQLiteConnection]] = {}
_lock = threading.Lock()
_size: int | None = None


class WriterQueue:
    """A lock taken in arrival order: a plain `threading.Lock` lets a writer that just
    came take it before one waiting for seconds (long p99 tails under 16 writers)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiting: collections.deque[threading.Lock] = collections.deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        with self._guard:
            if not self._held:
                self._held = True
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        if turn.acquire(timeout=max(timeout, 0)):
            return True  # handed over by release()
        with self._guard:
            try:
                self._waiting.remove(turn)
            except ValueError:
                return True  # handed over just as the wait ended
            return False

    def release(self) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().release()  # still held: now by the next writer
            else:
                self._held = False

    def locked(self) -> bool:
        return self._held


# One writer queue per database file (device, inode) of this process (item 4 above).
_writers: dict[tuple[int, int], WriterQueue] = {}
_BEGIN_WRITE = ("BEGIN IMMEDIATE", "BEGIN EXCLUSIVE")


def forget_pools_after_fork() -> None:
    try:
        from django.db.backends.postgresql.base import DatabaseWrapper
    except Exception:  # Django not set up (a fork before settings): nothing inherited
        return
    pools = getattr(DatabaseWrapper, "_connection_pools", None)  # Django >= 5.1
    if pools:
        _INHERITED.append(dict(pools))
        pools.clear()
    _forget_open_connections()


def forget_sqlite_after_fork() -> None:
    with _lock:
        _INHERITED.append(dict(_idle))
        _idle.clear()
    _forget_open_connections()


def _forget_open_connections() -> None:
    try:
        from django.db import connections
    except Exception:  # Django not set up (a fork before settings): nothing inherited
        return
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _INHERITED.append(conn.connection)
            conn.connection = None


def _pool_size() -> int:
    global _size
    if _size is None:
        from django.conf import settings

        _size = int(getattr(settings, "SQLITE_POOL_SIZE", 8))
    return _size


def _pool_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return repr((args, sorted(kwargs.items())))


def _file_id(database: Any) -> tuple[int, int] | None:
    """(device, inode) of a database file, None for anything else (memory, URI forms)."""
    path = str(database)
    if path.startswith("file:") or path == ":memory:" or not path:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_dev, found.st_ino)


def _database_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs.get("database")


_queued_cursors: dict[type, type] = {}


def _queued_cursor(factory: type[sqlite3.Cursor]) -> type[sqlite3.Cursor]:
    """`factory` whose `execute` goes through its connection's writer queue (one subclass
    per cursor class, made once)."""
    with _lock:
        queued = _queued_cursors.get(factory)
        if queued is None:

            def execute(self: sqlite3.Cursor, sql: str, *args: Any) -> sqlite3.Cursor:
                connection = self.connection
                if not isinstance(connection, PooledSQLiteConnection):
                    return factory.execute(self, sql, *args)
                taken = connection._queue_writer(sql)
                try:
                    return factory.execute(self, sql, *args)
                except BaseException:
                    if taken:
                        connection._release_writer()
                    raise

            queued = type(f"Queued{factory.__name__}", (factory,), {"execute": execute})
            _queued_cursors[factory] = queued
    return queued


class PooledSQLiteConnection(sqlite3.Connection):
    """A `sqlite3.Connection` whose `close()` keeps it for the next `connect()` with the
    same arguments (see the module docstring). Only for file databases: any other
    (`:memory:`, a `file:` URI) is an ordinary connection."""

    _pool_key: str | None = None
    _file: tuple[int, int] | None = None
    _reused: bool = False  # handed back by __new__: already open
    _parked: bool = False  # idle in the pool
    _writer: WriterQueue | None = None  # this process's writer queue, while held
    _timeout: float = 5.0

    def __new__(cls, *args: Any, **kwargs: Any) -> PooledSQLiteConnection:
        key = _pool_key(args, kwargs)
        file = _file_id(_database_of(args, kwargs))
        while file is not None:
            with _lock:
                idle = _idle.get(key)
                reused = idle.pop() if idle else None
            if reused is None:
                break
            if reused._file == file:
                reused._reused, reused._parked = True, False
                return reused
            _INHERITED.append(reused)  # another file now has that name: drop, never close
        connection = super().__new__(cls)
        connection._reused = connection._parked = False
        return connection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if self._reused:  # already open: sqlite3's __init__ would reopen it
            return
        super().__init__(*args, **kwargs)
        database = _database_of(args, kwargs)
        self._file = _file_id(database)
        self._timeout = float(kwargs.get("timeout", 5.0))
        # Before the first statement: an empty file would not exist yet for `_file_id`.
        self._pool_key = _pool_key(args, kwargs) if self._file is not None else None

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        queued = self._queue_writer(sql)
        try:
            return super().execute(sql, *args)
        except BaseException:
            if queued:
                self._release_writer()
            raise

    def cursor(self, factory: Any = sqlite3.Cursor) -> Any:  # type: ignore[override]
        # Django runs its `BEGIN IMMEDIATE` on a cursor of its own class
        # (`connection.cursor(factory=SQLiteCursorWrapper)`), not through `execute` above:
        # the cursor class gets the same writer queue.
        return super().cursor(_queued_cursor(factory))

    def _queue_writer(self, sql: str) -> bool:
        """Before a `BEGIN IMMEDIATE`, wait for this process's writer queue; True when
        this call took it (the caller gives it back if the BEGIN fails)."""
        if self._file is None or self._writer is not None:
            return False
        if not sql.lstrip()[:15].upper().startswith(_BEGIN_WRITE):
            return False
        with _lock:
            writer = _writers.setdefault(self._file, WriterQueue())
        if not writer.acquire(timeout=self._timeout):
            return False  # waited long enough: on to SQLite's own lock and timeout
        self._writer = writer
        return True

    def _release_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release_writer()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release_writer()

    def close(self) -> None:
        if self._parked:  # closed twice: it is in the pool once
            return
        key = self._pool_key
        if key is None:
            self._release_writer()
            super().close()
            return
        try:
            if self.in_transaction:
                self.rollback()
        except sqlite3.Error:
            self._release_writer()
            super().close()
            return
        self._release_writer()
        with _lock:
            idle = _idle.setdefault(key, [])
            if len(idle) < _pool_size():
                self._parked = True
                idle.append(self)
                return
        super().close()
