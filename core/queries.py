"""Query helpers shared by the apps' selectors and services."""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)


def unique_row(queryset: QuerySet[M]) -> M | None:
    """The row of a lookup by a unique key (a token, a uuid, a key hash), or None.

    `.first()` without its ORDER BY: it orders by the primary key when the queryset has
    no order of its own (or keeps the one it has), and Django compiles that clause on
    every call. On the message POSTs' lookups that compiling was ~5% of a web process's
    CPU (py-spy, BENCHMARKS.md). A unique key names at most one row: the order is moot.
    """
    for row in queryset.order_by()[:1]:
        return row
    return None
