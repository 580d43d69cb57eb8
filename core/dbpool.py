"""The PostgreSQL connection pool across `fork()` (RQ forks a work horse per job).

Django keeps its psycopg pools on the backend class (`DatabaseWrapper._connection_pools`),
so a forked child inherits its parent's pool: its connections (sockets shared with the
parent's) and no worker threads. A child that used them would interleave its queries
with the parent's on the same socket. After a fork the child therefore forgets the
inherited pools and connections, and opens its own on first use.

It only forgets them: closing would send PostgreSQL a Terminate on the parent's
sockets, and letting them be garbage-collected would too (libpq closes on free), so
the child keeps references until it exits. Nothing here runs when there is no pool.
"""

from __future__ import annotations

from typing import Any

# Objects inherited from the parent, kept alive (never closed) for the child's life.
_INHERITED: list[Any] = []


def forget_pools_after_fork() -> None:
    try:
        from django.db import connections
        from django.db.backends.postgresql.base import DatabaseWrapper
    except Exception:  # Django not set up (a fork before settings): nothing inherited
        return
    pools = getattr(DatabaseWrapper, "_connection_pools", None)  # Django >= 5.1
    if pools:
        _INHERITED.append(dict(pools))
        pools.clear()
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _INHERITED.append(conn.connection)
            conn.connection = None
