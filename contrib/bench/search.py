"""Search benchmark (issue 13): p99 per query over 1,000,000 messages on PostgreSQL.

    .venv/bin/python contrib/bench/search.py [--messages 1000000] [--queries 300]
        [--database-url postgres://postgres@127.0.0.1:5432/postgres]

Creates a scratch database (dropped at the end unless --keep), migrates it, fills one
organization with `--messages` messages (8-15 words each from a 5,000-word vocabulary
with a skewed, Zipf-like frequency, so some words are in a third of all messages and
some in a few hundred) over 50,000 clients and desks, then times the product's own search
(`chat.search.search_messages` + `search_clients`: the GIN index, the organization join,
the fetch of the 20 newest messages and their snippets) for rare, medium and common words,
3-letter prefixes and two-word queries. Every figure is the whole call, measured in this
process against a local PostgreSQL.

Baseline, in the same run: the same queries as an unindexed `ILIKE '%word%'` over the
newest `--baseline-messages` (100,000) messages of the same table (a copy without index):
what search would cost without the full-text index on a tenth of the data.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
VOCABULARY = 5000


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _words(seed: int) -> list[str]:
    rng = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < VOCABULARY:
        seen.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 10))))
    words = sorted(seen)  # a set's order changes with the process's hash seed
    rng.shuffle(words)
    return words


def _by_frequency(cursor: Any) -> list[str]:
    """The vocabulary as the table has it, most frequent first (a 2% sample): the query
    classes below pick words by their real frequency, also for a --reuse'd database."""
    cursor.execute(
        "SELECT word FROM ts_stat('SELECT to_tsvector(''simple'', message) FROM chat_message"
        " WHERE id % 50 = 0') ORDER BY ndoc DESC, word"
    )
    return [row[0] for row in cursor.fetchall()]


def _fill(cursor: Any, words: list[str], messages: int, clients: int) -> None:
    """Rows straight in SQL (minutes faster than the ORM); every NOT NULL column given."""
    cursor.execute(
        "INSERT INTO core_organization (slug, name, created_at)"
        " VALUES ('bench', 'Bench', now()) RETURNING id"
    )
    org_id = cursor.fetchone()[0]
    cursor.execute(
        """
        INSERT INTO chat_client (uuid, organization_id, name, phone, operator_code, channel,
            email, email_promo_opt_out, email_undeliverable, language, tag, timezone,
            promo_opt_out, created_at, updated_at)
        SELECT gen_random_uuid(), %s, 'Client ' || i, '7' || lpad(i::text, 10, '0'), '000',
            'sms', 'client' || i || '@example.com', false, false, '', 'tag' || (i %% 50), 'UTC',
            false, now(), now()
        FROM generate_series(1, %s) AS i
        """,
        [org_id, clients],
    )
    cursor.execute(
        """
        INSERT INTO chat_helpdesk (uuid, organization_id, client_id, status, last_activity_at,
            received_count, created_at, updated_at)
        SELECT gen_random_uuid(), organization_id, id, 'open', now(), 0, now(), now()
        FROM chat_client WHERE organization_id = %s
        """,
        [org_id],
    )
    cursor.execute(
        "SELECT min(id), max(id) FROM chat_helpdesk WHERE organization_id = %s", [org_id]
    )
    low, high = cursor.fetchone()
    # Filled without the GIN index, which is then built once (as CREATE INDEX on a
    # populated table in production): maintaining it row by row only slows the setup.
    cursor.execute("DROP INDEX IF EXISTS chat_message_fts_gin")
    cursor.execute(
        """
        INSERT INTO chat_message (uuid, help_desk_id, message, file_name, type, status,
            created_at, updated_at)
        SELECT gen_random_uuid(), %s + (i %% (%s - %s + 1)),
            array_to_string(ARRAY(
                SELECT (%s::text[])[1 + floor(%s * power(random(), 3))::int]
                FROM generate_series(1, 8 + (i %% 8) + 0 * i)
            ), ' '),
            '', CASE WHEN i %% 2 = 0 THEN 'received' ELSE 'sent' END, 'delivered',
            now() - make_interval(secs => %s - i), now()
        FROM generate_series(1, %s) AS i
        """,
        [low, high, low, words, VOCABULARY, messages, messages],
    )
    cursor.execute(
        "CREATE INDEX chat_message_fts_gin ON chat_message "
        "USING GIN (to_tsvector('simple', message))"
    )
    cursor.execute("ANALYZE")


def _queries(words: list[str], count: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    n = max(count // 5, 1)
    return {
        "common word": [rng.choice(words[:20]) for _ in range(n)],
        "medium word": [rng.choice(words[100:1000]) for _ in range(n)],
        "rare word": [rng.choice(words[3000:4500]) for _ in range(n)],
        "3-letter prefix": [rng.choice(words[:2000])[:3] for _ in range(n)],
        "two words": [f"{rng.choice(words[:200])} {rng.choice(words[:2000])}" for _ in range(n)],
    }


def _time(run: Callable[[str], Any], queries: list[str]) -> list[float]:
    out = []
    for q in queries:
        started = time.perf_counter()
        run(q)
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--baseline-messages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--window", type=int, default=0, help="chat.search.RECENT_WINDOW")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", default="", help="a database --keep left: no setup")
    args = parser.parse_args()

    import psycopg

    dbname = args.reuse or f"search_bench_{os.getpid()}"
    admin = psycopg.connect(args.database_url, autocommit=True)
    if not args.reuse:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    try:
        _run(args, dbname)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.close()


def _run(args: argparse.Namespace, dbname: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="core.settings",
        DATABASE_URL=_with_database(args.database_url, dbname),
        DB_POOL_MAX="0",
        LOG_LEVEL="WARNING",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-" + "x" * 50,
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    import chat.search
    from chat.search import search_clients, search_messages

    if args.window:
        chat.search.RECENT_WINDOW = args.window
    from core.models import Organization

    words = _words(13)
    started = time.perf_counter()
    if not args.reuse:
        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            _fill(cursor, words, args.messages, args.clients)
            cursor.execute(
                "CREATE TABLE bench_baseline AS SELECT id, message FROM chat_message "
                "ORDER BY id DESC LIMIT %s",
                [args.baseline_messages],
            )
            cursor.execute("ANALYZE bench_baseline")
    print(
        f"setup: {args.messages:,} messages, {args.clients:,} clients in "
        f"{time.perf_counter() - started:.0f} s (PostgreSQL {connection.pg_version})"
    )

    organizations = Organization.objects.filter(slug="bench")

    def indexed(q: str) -> Any:
        hits = search_messages(organizations=organizations, q=q)
        return hits, search_clients(organizations=organizations, q=q)

    def baseline(q: str) -> Any:
        pattern = "%" + "%".join(q.split()) + "%"
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM bench_baseline WHERE message ILIKE %s ORDER BY id DESC LIMIT 20",
                [pattern],
            )
            return cursor.fetchall()

    with connection.cursor() as cursor:
        words = _by_frequency(cursor)
        share = []
        for word in (words[0], words[100], words[3000]):
            cursor.execute(
                "SELECT count(*) FROM chat_message"
                " WHERE to_tsvector('simple', message) @@ to_tsquery('simple', %s)",
                [word],
            )
            share.append(f"{cursor.fetchone()[0] / args.messages:.2%}")
    print(f"messages holding the 1st, 100th, 3000th most frequent word: {', '.join(share)}")
    queries = _queries(words, args.queries, 7)
    for q in [w for ws in queries.values() for w in ws][:10]:  # warm the caches
        indexed(q), baseline(q)
    print(
        f"\n{'query kind':<16} {'n':>4} | {'search (GIN) ms':^26} | "
        f"{'baseline ILIKE on ' + format(args.baseline_messages, ',') + ' ms':^30}"
    )
    print(f"{'':<16} {'':>4} | {'p50':>8} {'p95':>8} {'p99':>8} | {'p50':>9} {'p95':>9} {'p99':>9}")
    every: list[float] = []
    every_base: list[float] = []
    for kind, qs in queries.items():
        hits = [len(indexed(q)[0]) for q in qs[:5]]
        timed = _time(indexed, qs)
        base = _time(baseline, qs)
        every += timed
        every_base += base
        print(
            f"{kind:<16} {len(qs):>4} | {statistics.median(timed):8.1f} "
            f"{_percentile(timed, 0.95):8.1f} {_percentile(timed, 0.99):8.1f} | "
            f"{statistics.median(base):9.1f} {_percentile(base, 0.95):9.1f} "
            f"{_percentile(base, 0.99):9.1f}   (hits of the first 5: {hits})"
        )
    print(
        f"{'all':<16} {len(every):>4} | {statistics.median(every):8.1f} "
        f"{_percentile(every, 0.95):8.1f} {_percentile(every, 0.99):8.1f} | "
        f"{statistics.median(every_base):9.1f} {_percentile(every_base, 0.95):9.1f} "
        f"{_percentile(every_base, 0.99):9.1f}"
    )
    target = _percentile(every, 0.99) < 200
    print(
        f"\ntarget p99 < 200 ms per query on {args.messages:,} messages: "
        f"{'met' if target else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
