"""Clients (contacts) of an organization: create, update, delete. The only writers of
`chat.Client` besides the widget's visitors (chat/visitors.py)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext

from chat.files import files_delete_on_commit, message_files
from chat.models import Client, Message
from chat.publish import help_desk_publish, help_desk_publish_deleted
from core.errors import ApplicationError
from core.logging import get_logger
from core.models import Organization

log = get_logger(__name__)


def _client_save(client: Client) -> Client:
    # Uniqueness is left to the database (the IntegrityError below): full_clean's own
    # constraint check would answer a bare "__all__" error instead of one on `phone`.
    client.full_clean(validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            client.save()
    except IntegrityError as exc:
        raise ApplicationError(
            gettext("A client with this phone already exists in the organization."),
            fields={"phone": [gettext("Already used by another client of this organization.")]},
        ) from exc
    return client


def client_create(
    *,
    organization: Organization,
    name: str,
    phone: str,
    operator_code: str | None = None,
    tag: str = "",
    timezone: str = "UTC",
    promo_opt_out: bool = False,
    email: str = "",
    language: str = "",
    email_promo_opt_out: bool = False,
) -> Client:
    client = _client_save(
        Client(
            organization=organization,
            name=name,
            phone=phone,
            operator_code=operator_code or phone[1:4],
            tag=tag,
            timezone=timezone,
            promo_opt_out=promo_opt_out,
            email=email,
            language=language,
            email_promo_opt_out=email_promo_opt_out,
        )
    )
    log.info("client_created", client_id=client.pk, organization_id=organization.pk)
    return client


@transaction.atomic
def client_update(*, client: Client, data: dict[str, Any]) -> Client:
    for field in (
        "name",
        "phone",
        "tag",
        "timezone",
        "promo_opt_out",
        "operator_code",
        "email",
        "language",
        "email_promo_opt_out",
    ):
        if field in data:
            setattr(client, field, data[field])
    if "phone" in data and "operator_code" not in data:
        client.operator_code = client.phone[1:4]
    _client_save(client)
    log.info("client_updated", client_id=client.pk, fields=sorted(data))
    # Help desks carry the client nested: every open copy of them is now stale.
    for help_desk in client.help_desks.select_related("last_message", "assignee"):
        help_desk.client = client
        help_desk_publish(help_desk)
    return client


@transaction.atomic
def client_delete(*, client: Client) -> None:
    log.info("client_deleted", client_id=client.pk, organization_id=client.organization_id)
    for help_desk in client.help_desks.all():
        help_desk.client = client
        help_desk_publish_deleted(help_desk)  # its help desks go with it (cascade)
    # Named before the cascade: afterwards no query finds them.
    files_delete_on_commit(message_files(Message.objects.filter(help_desk__client=client)))
    client.delete()
