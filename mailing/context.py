"""Context providers: how the values of a template's placeholders are collected per client,
chosen by the template's `code`.

A provider takes the organization, a chunk of clients (dicts with `pk` and
`rendering.CLIENT_FIELDS`) and the time of rendering, and returns each client's values
(strings), computed for the whole chunk at once (a few queries per chunk, not per
client: a 100,000-client mailing renders 2,000 clients per transaction).

- `common` (every template whose code names no other provider): the client's fields.
- `monthly_personal_statistic`: the client's fields plus this calendar month's
  `conversations` (help desks opened), `messages` (exchanged in them), `last_contact`
  (the last message's date, ISO, blank if none) and `mailings_received` (mailing
  messages sent), from the platform's own rows.

Adding one: write the function, register it in `PROVIDERS` with the names it adds
(the template check allows those placeholders), and document it in docs/mailing.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Max

from chat.models import Client, HelpDesk, Message
from core.models import Delivery
from mailing import rendering
from mailing.models import MailingMessage

Values = dict[int, dict[str, str]]


@dataclass(frozen=True)
class ContextProvider:
    name: str
    fields: tuple[str, ...]  # the placeholders it adds to the client's fields
    collect: Callable[[int, Sequence[dict[str, Any]], datetime], Values]


def _common(organization_id: int, clients: Sequence[dict[str, Any]], now: datetime) -> Values:
    return {c["pk"]: rendering.client_values_from_dict(c) for c in clients}


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _monthly(organization_id: int, clients: Sequence[dict[str, Any]], now: datetime) -> Values:
    since = _month_start(now)
    ids = [c["pk"] for c in clients]
    desks = dict(
        HelpDesk.objects.filter(
            organization_id=organization_id, client_id__in=ids, created_at__gte=since
        )
        .values("client_id")
        .annotate(n=Count("pk"))
        .values_list("client_id", "n")
    )
    messages = {
        row["help_desk__client_id"]: row
        for row in Message.objects.filter(
            help_desk__organization_id=organization_id,
            help_desk__client_id__in=ids,
            created_at__gte=since,
        )
        .values("help_desk__client_id")
        .annotate(n=Count("pk"), last=Max("created_at"))
    }
    received = dict(
        MailingMessage.objects.filter(
            mailing__organization_id=organization_id,
            client_id__in=ids,
            delivery__status=Delivery.Status.SENT,
            delivery__sent_at__gte=since,
        )
        .values("client_id")
        .annotate(n=Count("pk"))
        .values_list("client_id", "n")
    )
    out = _common(organization_id, clients, now)
    for pk, values in out.items():
        row = messages.get(pk)
        values["conversations"] = str(desks.get(pk, 0))
        values["messages"] = str(row["n"] if row else 0)
        values["last_contact"] = row["last"].date().isoformat() if row else ""
        values["mailings_received"] = str(received.get(pk, 0))
    return out


COMMON = ContextProvider("common", (), _common)
PROVIDERS: dict[str, ContextProvider] = {
    p.name: p
    for p in (
        COMMON,
        ContextProvider(
            "monthly_personal_statistic",
            ("conversations", "messages", "last_contact", "mailings_received"),
            _monthly,
        ),
    )
}


def provider_for(code: str | None) -> ContextProvider:
    """The provider a template's code names; `common` for any other code (or no template)."""
    return PROVIDERS.get(code or "", COMMON)


def allowed_placeholders(code: str | None) -> list[str]:
    return [*rendering.CLIENT_FIELDS, *provider_for(code).fields]


def template_preview(
    *, template: Any, client_id: int, values: dict[str, str], now: datetime
) -> dict[str, str] | None:
    """What the client would receive from `template` with the mailing's `values`, rendered
    exactly as the materializer renders it; None if the client is not of the template's
    organization (another tenant's client is as unknown as a missing one)."""
    client = (
        Client.objects.filter(organization_id=template.organization_id, pk=client_id)
        .values("pk", *rendering.CLIENT_FIELDS)
        .first()
    )
    if client is None:
        return None
    provider = provider_for(template.code)
    merged = {**values, **provider.collect(template.organization_id, [client], now)[client["pk"]]}
    return {
        "transport": template.transport,
        "subject": rendering.render(template.subject, merged)[:255],
        "text": rendering.render(template.body, merged),
        "html": rendering.render_html(template.html_body, merged),
        "provider": provider.name,
    }
