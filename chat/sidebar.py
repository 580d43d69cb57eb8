"""The customer context sidebar (issue 13): what the platform knows about one client.

Reads only, each bounded (the newest `LIMIT` of each kind) and each one query, so the
sidebar costs the same for a client with ten years of history. The caller has already
authorized the client (`chat.selectors.client_get_for_principal`).
"""

from __future__ import annotations

from typing import Any

from chat.models import Client, HelpDesk
from escalation.models import Incident, IncidentStep
from mailing.models import MailingMessage

LIMIT = 20


def client_help_desks(*, client: Client) -> list[dict[str, Any]]:
    desks = (
        HelpDesk.objects.filter(client=client)
        .select_related("last_message")
        .order_by("-last_activity_at", "-id")[:LIMIT]
    )
    return [
        {
            "uuid": desk.uuid,
            "status": desk.status,
            "created_at": desk.created_at,
            "last_activity_at": desk.last_activity_at,
            "last_message_text": desk.last_message.message if desk.last_message else "",
        }
        for desk in desks
    ]


def client_mailings(*, client: Client) -> list[dict[str, Any]]:
    rows = (
        MailingMessage.objects.filter(client=client)
        .select_related("mailing", "delivery")
        .order_by("-created_at", "-pk")[:LIMIT]
    )
    return [
        {
            "id": row.mailing.pk,
            "name": row.mailing.name,
            "status": row.mailing.status,
            "transport": row.transport,
            "sent_at": row.delivery.sent_at,
            "message_status": row.delivery.status,
        }
        for row in rows
    ]


def client_incidents(*, client: Client) -> list[dict[str, Any]]:
    """Open (or acknowledged) incidents whose customer warning reached this client: the
    warning step's mailing has a message for them."""
    warned = MailingMessage.objects.filter(client=client).values("mailing_id")
    steps = (
        IncidentStep.objects.filter(
            kind=IncidentStep.Kind.WARNING,
            mailing_id__in=warned,
            incident__status__in=Incident.ACTIVE,
            incident__organization_id=client.organization_id,
        )
        .select_related("incident")
        .order_by("-incident__opened_at")[:LIMIT]
    )
    return [
        {
            "uuid": step.incident.uuid,
            "rule_code": step.incident.rule_snapshot.get("code", ""),
            "rule_name": step.incident.rule_snapshot.get("name")
            or step.incident.rule_snapshot.get("code", ""),
            "status": step.incident.status,
            "started_at": step.incident.opened_at,
            "warned_at": step.fired_at,
        }
        for step in steps
    ]
