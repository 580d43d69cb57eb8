"""What choosing the language costs a request (issue 16), beside the same request without it.

    .venv/bin/python contrib/bench/i18n_overhead.py [--requests 400] [--rounds 5]

In one process, on a fresh SQLite database: an agent's session calls the console's list
(`GET /api/help-desks/?organization=acme`, 20 conversations) with the full MIDDLEWARE
(LocaleMiddleware + core.i18n.AgentLanguageMiddleware, with a saved language: its one
query) and, as the baseline, with those two removed; rounds alternate so load drifts hit
both. Also `/jsi18n/` served from the per-process cache (a 304 to a revalidating browser,
and a full 200) against building the catalog each time (the cache emptied per request).
Rate limits are off (no Redis round trip in either column).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _setup() -> None:
    db = Path(tempfile.mkdtemp()) / "bench.sqlite3"
    os.environ.update(
        DATABASE_URL=f"sqlite:///{db}",
        SECRET_KEY="bench-" + "x" * 50,
        USER_RATE="0/min",
        API_KEY_RATE="0/min",
        ANON_RATE="0/min",
        DJANGO_SETTINGS_MODULE="core.settings",
        PASSWORD_HASHERS="django.contrib.auth.hashers.MD5PasswordHasher",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _timed(call: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    _setup()
    from django.conf import settings
    from django.test import Client
    from django.test.utils import override_settings

    from chat.services import message_receive
    from core import i18n
    from core.models import AgentPreference
    from core.services import agent_create, membership_add, organization_create

    org = organization_create(slug="acme", name="Acme")
    user = agent_create(username="alice", password="pw")
    membership_add(organization=org, user=user, role="admin")
    AgentPreference.objects.create(user=user, language="ru")
    for n in range(20):
        message_receive(organization=org, phone=f"7916{n:07d}", text=f"hello {n}")
    browser = Client(headers={"accept-language": "pt-BR"})
    browser.force_login(user)
    url = "/api/help-desks/?organization=acme"
    without = [
        m
        for m in settings.MIDDLEWARE
        if m
        not in ("django.middleware.locale.LocaleMiddleware", "core.i18n.AgentLanguageMiddleware")
    ]

    def get() -> None:
        assert browser.get(url).status_code == 200

    rows: dict[str, list[float]] = {"with i18n": [], "baseline (no i18n middleware)": []}
    for _ in range(args.rounds):
        rows["with i18n"] += _timed(get, args.requests)
        with override_settings(MIDDLEWARE=without):
            rows["baseline (no i18n middleware)"] += _timed(get, args.requests)

    anonymous = Client(headers={"accept-language": "ru"})
    etag = anonymous.get("/jsi18n/")["ETag"]

    def cached_304() -> None:
        assert anonymous.get("/jsi18n/", headers={"if-none-match": etag}).status_code == 304

    def cached_200() -> None:
        assert anonymous.get("/jsi18n/").status_code == 200

    def rebuilt() -> None:
        i18n._catalogs.clear()
        assert anonymous.get("/jsi18n/").status_code == 200

    for name, call in (
        ("/jsi18n/ cached, revalidated (304)", cached_304),
        ("/jsi18n/ cached (200)", cached_200),
        ("baseline: /jsi18n/ built per request", rebuilt),
    ):
        rows[name] = _timed(call, args.requests)

    print(f"{'request':44} {'mean ms':>8} {'p50 ms':>8} {'p99 ms':>8} {'n':>6}")
    for name, values in rows.items():
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(
            f"{name:44} {statistics.fmean(values):8.3f} {values[len(values) // 2]:8.3f} "
            f"{p99:8.3f} {len(values):6}"
        )


if __name__ == "__main__":
    main()
