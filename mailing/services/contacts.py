"""What email recipients and their mail provider tell us about an address: an unsubscribe
(RFC 8058 one-click or the confirmation page) and bounces or complaints (the provider's
webhook). They write the client's email flags (`chat.Client`), which the materializer and
the dispatch read: an undeliverable address is skipped and counted, an opted-out client
gets no promotional email (transactional mail still goes)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.db.models import Q

from chat.models import Client
from core.logging import get_logger
from core.models import Organization

log = get_logger(__name__)

BOUNCE = "bounce"
COMPLAINT = "complaint"
MAX_BOUNCE_ADDRESSES = 100


@transaction.atomic
def client_email_unsubscribe(*, client_id: int) -> bool:
    """Opt the client out of promotional email; idempotent. False if the client is gone."""
    updated = Client.objects.filter(pk=client_id).update(email_promo_opt_out=True)
    log.info("client_email_unsubscribed", client_id=client_id, found=bool(updated))
    return bool(updated)


@transaction.atomic
def clients_email_bounced(
    *, organization: Organization, addresses: Sequence[str], kind: str
) -> list[int]:
    """Mark the organization's clients with these addresses undeliverable (a hard bounce)
    or, for a complaint (the recipient called it spam), also opted out of promotions.
    Addresses match case-insensitively. Returns the client ids changed."""
    wanted = sorted({a.strip().lower() for a in addresses if a.strip()})
    match = Q(pk__in=[])
    for address in wanted:  # at most MAX_BOUNCE_ADDRESSES (the API's limit)
        match |= Q(email__iexact=address)
    ids = list(
        Client.objects.filter(organization=organization).filter(match).values_list("pk", flat=True)
    )
    fields: dict[str, bool] = {"email_undeliverable": True}
    if kind == COMPLAINT:
        fields["email_promo_opt_out"] = True
    Client.objects.filter(pk__in=ids).update(**fields)
    log.info(
        "clients_email_bounced",
        organization_id=organization.pk,
        kind=kind,
        client_ids=ids,
        addresses=len(wanted),
    )
    return ids
