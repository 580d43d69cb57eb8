"""`manage.py create_api_key --organization <slug> --name <bot>` (integration key) or `--user`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.models import Organization
from core.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key; prints it once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--organization", help="Integration key scoped to this organization.")
        group.add_argument("--user", help="Agent key acting as this user.")
        parser.add_argument("--name", default="cli")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["organization"]:
            organization = Organization.objects.filter(slug=opts["organization"]).first()
            if organization is None:
                raise CommandError(f"No organization {opts['organization']!r}.")
            _, raw = api_key_create(name=opts["name"], organization=organization)
        else:
            user = get_user_model().objects.filter(username=opts["user"]).first()
            if user is None:
                raise CommandError(f"No user {opts['user']!r}.")
            _, raw = api_key_create(name=opts["name"], user=user)
        self.stdout.write(raw)
