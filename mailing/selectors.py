"""Mailing reads: lists, fetch-and-authorize helpers, statistics."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Max, Min, QuerySet
from django.utils.translation import gettext

from core.access import organizations_for
from core.errors import ApplicationError
from core.models import Delivery
from mailing.models import (
    Event,
    EventRule,
    Mailing,
    MailingMessage,
    MailingSkip,
    Template,
    Transport,
)

STATUSES = tuple(Delivery.Status.values)


def _zero() -> dict[str, int]:
    return dict.fromkeys(STATUSES, 0)


def mailing_list(*, principal: Any, organization_slug: str | None = None) -> QuerySet[Mailing]:
    qs = Mailing.objects.filter(organization__in=organizations_for(principal))
    if organization_slug is not None:
        qs = qs.filter(organization__slug=organization_slug)
    return qs.select_related("organization", "template")


def mailing_get_for_principal(*, principal: Any, pk: int) -> Mailing:
    mailing = mailing_list(principal=principal).filter(pk=pk).first()
    if mailing is None:
        raise ApplicationError(gettext("Mailing not found."), code="not_found", status_code=404)
    return mailing


def template_list(*, principal: Any, organization_slug: str | None = None) -> QuerySet[Template]:
    qs = Template.objects.filter(organization__in=organizations_for(principal))
    if organization_slug is not None:
        qs = qs.filter(organization__slug=organization_slug)
    # variants: listed in the template's representation, one query for the page.
    return qs.select_related("organization").prefetch_related("variants")


def template_get_for_principal(*, principal: Any, pk: int) -> Template:
    template = template_list(principal=principal).filter(pk=pk).first()
    if template is None:
        raise ApplicationError(gettext("Template not found."), code="not_found", status_code=404)
    return template


def mailing_counts(*, mailing_id: int) -> dict[str, int]:
    """Messages of one mailing by delivery status (every status present, 0 if none)."""
    counts = _zero()
    for status, n in (
        Delivery.objects.filter(mailing_message__mailing_id=mailing_id)
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        counts[status] = n
    counts["total"] = sum(counts[s] for s in STATUSES)
    return counts


def mailings_counts(*, mailing_ids: list[int]) -> dict[int, dict[str, int]]:
    """Counts by status for many mailings in one grouped query."""
    result = {pk: _zero() for pk in mailing_ids}
    for mailing_id, status, n in (
        MailingMessage.objects.filter(mailing_id__in=mailing_ids)
        .values_list("mailing_id", "delivery__status")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        result[mailing_id][status] = n
    for counts in result.values():
        counts["total"] = sum(counts[s] for s in STATUSES)
    return result


def mailing_stats(*, mailing: Mailing) -> dict[str, Any]:
    """Counts, timing and throughput of one mailing."""
    counts = mailing_counts(mailing_id=mailing.pk)
    timing = Delivery.objects.filter(mailing_message__mailing_id=mailing.pk).aggregate(
        first_sent=Min("sent_at"), last_sent=Max("sent_at")
    )
    attempts = MailingMessage.objects.filter(mailing=mailing).aggregate(
        n=Count("delivery__attempt_rows")
    )["n"]
    skipped = dict.fromkeys(MailingSkip.Reason.values, 0)
    for reason, n in (
        MailingSkip.objects.filter(mailing=mailing).values_list("reason").annotate(n=Count("pk"))
    ):
        skipped[reason] = n
    skipped["total"] = sum(skipped.values())
    transports = dict.fromkeys(Transport.values, 0)
    for transport, n in (
        MailingMessage.objects.filter(mailing=mailing)
        .values_list("transport")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        transports[transport] = n
    duration = None
    throughput = None
    if mailing.started_at is not None and timing["last_sent"] is not None:
        duration = max((timing["last_sent"] - mailing.started_at).total_seconds(), 0.001)
        throughput = round(counts["sent"] / duration, 2)
    return {
        "id": mailing.pk,
        "name": mailing.name,
        "status": mailing.status,
        "counts": counts,
        "attempts": attempts,
        # Clients of the audience without a message (no usable address, bounced, opted out).
        "skipped": skipped,
        "by_transport": transports,
        "started_at": mailing.started_at,
        "finished_at": mailing.finished_at,
        "first_sent_at": timing["first_sent"],
        "last_sent_at": timing["last_sent"],
        "duration_seconds": round(duration, 3) if duration is not None else None,
        "throughput_per_second": throughput,
    }


def message_list(*, mailing: Mailing) -> QuerySet[MailingMessage]:
    return (
        MailingMessage.objects.filter(mailing=mailing)
        .select_related("delivery", "client")
        .prefetch_related("delivery__attempt_rows")
    )


def event_list(*, principal: Any, organization_slug: str | None = None) -> QuerySet[Event]:
    qs = Event.objects.filter(organization__in=organizations_for(principal))
    if organization_slug is not None:
        qs = qs.filter(organization__slug=organization_slug)
    return qs.select_related("organization", "client").prefetch_related("mailings")


def event_rule_list(*, principal: Any, organization_slug: str | None = None) -> QuerySet[EventRule]:
    qs = EventRule.objects.filter(organization__in=organizations_for(principal))
    if organization_slug is not None:
        qs = qs.filter(organization__slug=organization_slug)
    return qs.select_related("organization")


def event_rule_get_for_principal(*, principal: Any, pk: int) -> EventRule:
    rule = event_rule_list(principal=principal).filter(pk=pk).first()
    if rule is None:
        raise ApplicationError(gettext("Rule not found."), code="not_found", status_code=404)
    return rule
