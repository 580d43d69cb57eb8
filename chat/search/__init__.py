"""Search across an organization's clients and message text (issue 13): one API, two
engines, chosen by the database in use.

- **PostgreSQL**: full-text search on `to_tsvector('simple', message)`, served by a GIN
  index on that expression (migration 0008, created only on PostgreSQL). The `simple`
  configuration lowercases and splits words without stemming: the organizations write
  English, Russian and Portuguese, and a stemmer for one language mangles the others.
- **SQLite** (the embedded default): an FTS5 table, `chat_message_fts`, with the message
  table as its external content, kept in step by three triggers (insert, update of the
  text, delete) created by the same migration only on SQLite. Triggers rather than the
  services, so no write path (admin moderation, cascades from a client's deletion,
  raw SQL in a data migration) can leave the index behind. Caveat: SQLite rebuilds a
  table for most ALTERs and that drops its triggers; a migration that alters
  `chat_message` must create them again (tests/chat/test_search.py checks they exist).

Both engines match every word of the query as a prefix ("refu" finds "refund"), newest
messages first. Clients match by name, email (substring, case-insensitive), phone
(digits, substring) and tag (exact). At most `LIMIT` of each.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet

from chat.models import Client, Message
from core.models import Organization

LIMIT = 20
MAX_TERMS = 8
SNIPPET_CHARS = 160
# Letters, digits and underscore in any script: nothing a query language could read
# as an operator reaches FTS5's MATCH or to_tsquery.
_WORD = re.compile(r"\w+", re.UNICODE)


def terms_of(q: str) -> list[str]:
    return [t.lower() for t in _WORD.findall(q)][:MAX_TERMS]


def _message_ids(*, organization_ids: list[int], terms: list[str]) -> list[int]:
    if not terms or not organization_ids:
        return []
    placeholders = ", ".join(["%s"] * len(organization_ids))
    if connection.vendor == "postgresql":
        return _postgres_ids(placeholders, organization_ids, " & ".join(f"{t}:*" for t in terms))
    else:
        sql = f"""
            SELECT m.id FROM chat_message_fts f
            JOIN chat_message m ON m.id = f.rowid
            JOIN chat_helpdesk h ON h.id = m.help_desk_id
            WHERE chat_message_fts MATCH %s AND h.organization_id IN ({placeholders})
            ORDER BY m.id DESC LIMIT {LIMIT}
        """
        query = " ".join(f'"{t}"*' for t in terms)  # quoted: a term is never syntax
    with connection.cursor() as cursor:
        cursor.execute(sql, [query, *organization_ids])
        return [row[0] for row in cursor.fetchall()]


# Newest messages checked row by row before asking the index (see _postgres_ids).
RECENT_WINDOW = 1000


def _postgres_ids(placeholders: str, organization_ids: list[int], query: str) -> list[int]:
    """Two steps, because "the 20 newest matches" has no single good plan:

    1. The newest RECENT_WINDOW messages, walked by primary key and tested one by one
       (the `|| ''` keeps the planner off the GIN index here). A word in many messages
       (the slow case for the index: it would fetch and sort every match) has its 20
       hits there, for the price of tokenizing a few thousand rows.
    2. Otherwise the GIN index, ordered by `m.id + 0` so the planner cannot walk the
       primary key backwards hoping to meet matches soon (for a word in a few thousand
       messages it would read most of the table: seconds). Few matches: fast.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT m.id FROM chat_message m
            JOIN chat_helpdesk h ON h.id = m.help_desk_id
            WHERE m.id > (SELECT coalesce(max(id), 0) FROM chat_message) - %s
              AND to_tsvector('simple', m.message || '') @@ to_tsquery('simple', %s)
              AND h.organization_id IN ({placeholders})
            ORDER BY m.id DESC LIMIT {LIMIT}
            """,
            [RECENT_WINDOW, query, *organization_ids],
        )
        ids = [row[0] for row in cursor.fetchall()]
        if len(ids) == LIMIT:
            return ids
        cursor.execute(
            f"""
            SELECT m.id FROM chat_message m
            JOIN chat_helpdesk h ON h.id = m.help_desk_id
            WHERE to_tsvector('simple', m.message) @@ to_tsquery('simple', %s)
              AND h.organization_id IN ({placeholders})
            ORDER BY m.id + 0 DESC LIMIT {LIMIT}
            """,
            [query, *organization_ids],
        )
        return [row[0] for row in cursor.fetchall()]


def snippet(text: str, terms: list[str]) -> str:
    """Plain text around the first matching word (the console highlights it itself)."""
    lowered = text.lower()
    positions = [p for p in (lowered.find(t) for t in terms) if p >= 0]
    start = max(min(positions, default=0) - SNIPPET_CHARS // 3, 0)
    piece = text[start : start + SNIPPET_CHARS].strip()
    return ("…" if start else "") + piece + ("…" if start + SNIPPET_CHARS < len(text) else "")


def search_messages(*, organizations: QuerySet[Organization], q: str) -> list[dict[str, Any]]:
    terms = terms_of(q)
    ids = _message_ids(
        organization_ids=list(organizations.values_list("pk", flat=True)), terms=terms
    )
    messages = {
        m.pk: m
        for m in Message.objects.filter(pk__in=ids).select_related(
            "help_desk", "help_desk__client", "sender"
        )
    }
    return [
        {"message": messages[pk], "snippet": snippet(messages[pk].message, terms)}
        for pk in ids
        if pk in messages
    ]


def search_clients(*, organizations: QuerySet[Organization], q: str) -> list[Client]:
    text = q.strip()
    match = Q(name__icontains=text) | Q(email__icontains=text) | Q(tag__iexact=text)
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 2:
        match |= Q(phone__contains=digits)
    return list(
        Client.objects.filter(organization__in=organizations)
        .filter(match)
        .select_related("organization")
        .order_by("-updated_at", "-id")[:LIMIT]
    )
