"""`manage.py create_organization <slug> --agent <username>`: last line is the agent's API key."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from core.models import Membership, Organization
from core.services import agent_create, api_key_create, membership_add, organization_create


class Command(BaseCommand):
    help = "Create an organization (or reuse it) and an agent; print the agent's API key last."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument(
            "--agent", required=True, help="Username of the agent (created if new)."
        )
        parser.add_argument("--name", default="", help="Display name of the organization.")
        parser.add_argument("--password", default=None, help="Password for console/admin login.")
        parser.add_argument("--role", choices=[r.value for r in Membership.Role], default="admin")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            get_user_model().username_validator(opts["agent"])
        except ValidationError as exc:
            raise CommandError(f"--agent {opts['agent']!r}: {'; '.join(exc.messages)}") from exc
        if opts["password"] is not None:
            # AUTH_PASSWORD_VALIDATORS, as the admin's password forms apply them; checked
            # against the username before anything is created.
            try:
                password_validation.validate_password(
                    opts["password"], user=get_user_model()(username=opts["agent"])
                )
            except ValidationError as exc:
                raise CommandError(f"--password: {' '.join(exc.messages)}") from exc
        with transaction.atomic():
            organization = Organization.objects.filter(slug=opts["slug"]).first()
            if organization is None:
                try:
                    organization = organization_create(slug=opts["slug"], name=opts["name"])
                except ValidationError as exc:
                    raise CommandError(
                        "; ".join(
                            f"{field} {opts['slug']!r}: {message}"
                            for field, messages in exc.message_dict.items()
                            for message in messages
                        )
                    ) from exc
            user = agent_create(username=opts["agent"], password=opts["password"])
            membership_add(organization=organization, user=user, role=opts["role"])
            _, raw = api_key_create(name=f"{opts['agent']} CLI", user=user)
        self.stdout.write(f"organization: {organization.slug} (id {organization.pk})")
        self.stdout.write(f"agent: {user.get_username()} (role {opts['role']})")
        self.stdout.write(raw)
