"""`manage.py create_api_key --organization <slug> --name <bot> [--scopes triggers,inbound]`
(integration key) or `--user <username>` (agent key). Prints the scopes, then the key on
the last line. Scopes and their defaults: core/scopes.py."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core import scopes
from core.models import Organization
from core.services import api_key_create


def _scopes(value: str | None) -> list[str] | None:
    if value is None:
        return None  # the kind's default
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise CommandError(f"--scopes is empty; give one or more of: {', '.join(scopes.ALL)}.")
    try:
        return scopes.validate_scopes(names)
    except ValueError as exc:
        raise CommandError(f"--scopes {value!r}: {exc}") from exc


class Command(BaseCommand):
    help = "Create an API key; prints it once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--organization", help="Integration key scoped to this organization.")
        group.add_argument("--user", help="Agent key acting as this user.")
        parser.add_argument("--name", default="cli")
        parser.add_argument(
            "--scopes",
            help=(
                f"Comma-separated, of: {', '.join(scopes.ALL)}. Default: integration "
                f"{','.join(scopes.INTEGRATION_DEFAULT)}; agent {','.join(scopes.AGENT_DEFAULT)}."
            ),
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        wanted = _scopes(opts["scopes"])
        if opts["organization"]:
            organization = Organization.objects.filter(slug=opts["organization"]).first()
            if organization is None:
                raise CommandError(f"No organization {opts['organization']!r}.")
            key, raw = api_key_create(name=opts["name"], organization=organization, scopes=wanted)
        else:
            user = get_user_model().objects.filter(username=opts["user"]).first()
            if user is None:
                raise CommandError(f"No user {opts['user']!r}.")
            key, raw = api_key_create(name=opts["name"], user=user, scopes=wanted)
        self.stdout.write(f"scopes: {','.join(key.scopes)}")
        self.stdout.write(raw)  # last line, as create_organization: `... | tail -n 1`
