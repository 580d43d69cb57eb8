"""Mailing writes: create (and the transactional `notification_send`), update, delete.

Starting, cancelling and finishing are lifecycle transitions: `lifecycle.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from core.errors import ApplicationError
from core.logging import get_logger
from core.models import Delivery, Organization
from mailing.models import Mailing, MailingMessage, Template
from mailing.services.lifecycle import mailing_publish_updated, mailing_schedule_start
from mailing.services.validation import invalid_input, mailing_values_check

log = get_logger(__name__)

_EDITABLE_WHEN_STARTED = frozenset({"name", "priority", "end_at"})


# A mailing's values that the validation checks together (mailing_values_check): an update
# validates the merged whole, and the admin's form checks the same set.
MAILING_VALUES = (
    "start_at",
    "end_at",
    "text",
    "template",
    "context",
    "operator_codes",
    "tags",
    "client_ids",
    "priority",
    "window_start",
    "window_end",
    "transports",
    "kind",
)


def mailing_validate(*, organization: Organization, values: dict[str, Any], creating: bool) -> None:
    """Check a mailing's values (admin forms use it); raises ApplicationError."""
    mailing_values_check(
        organization=organization, values=values, now=timezone.now(), creating=creating
    )


@transaction.atomic
def mailing_create(
    *,
    organization: Organization,
    start_at: datetime,
    end_at: datetime,
    text: str = "",
    template: Template | None = None,
    context: dict[str, Any] | None = None,
    operator_codes: Sequence[str] = (),
    tags: Sequence[str] = (),
    client_ids: Sequence[int] = (),
    priority: int = 5,
    promo: bool = False,
    window_start: time | None = None,
    window_end: time | None = None,
    name: str = "",
    kind: str = Mailing.Kind.CAMPAIGN,
    created_by: Any = None,
    transports: Sequence[str] = (),
    event: Any = None,
    rule: Any = None,
) -> Mailing:
    now = timezone.now()
    values: dict[str, Any] = {
        "start_at": start_at,
        "end_at": end_at,
        "text": text,
        "template": template,
        "context": context if context is not None else {},
        "operator_codes": list(operator_codes),
        "tags": list(tags),
        "client_ids": list(client_ids),
        "priority": priority,
        "window_start": window_start,
        "window_end": window_end,
        "transports": list(transports or ()),
        "kind": kind,
    }
    mailing_values_check(organization=organization, values=values, now=now, creating=True)
    mailing = Mailing.objects.create(
        organization=organization,
        name=name,
        promo=promo,
        event=event,
        rule=rule,
        created_by=created_by if getattr(created_by, "pk", None) else None,
        **values,
    )
    log.info(
        "mailing_created",
        mailing_id=mailing.pk,
        organization_id=organization.pk,
        kind=kind,
        start_at=mailing.start_at.isoformat(),
        end_at=mailing.end_at.isoformat(),
        client_ids=mailing.client_ids[:50] or None,
    )
    mailing_schedule_start(mailing, now)
    mailing_publish_updated(mailing)
    return mailing


def notification_send(
    *,
    organization: Organization,
    text: str | None = None,
    template: Template | None = None,
    client_ids: Sequence[int] = (),
    tags: Sequence[str] = (),
    context: dict[str, Any] | None = None,
    priority: int = 5,
    promo: bool = False,
    name: str = "",
    transports: Sequence[str] = (),
    send_at: datetime | None = None,
    event: Any = None,
    rule: Any = None,
) -> Mailing:
    """A transactional send, now or at `send_at`: explicit clients and tag-selected ones,
    merged, over `transports` in order of preference.

    Creates a mailing that starts at `send_at` (default now; ends
    `MAILING_NOTIFICATION_TTL` later) and enqueues its start on commit (at its time:
    the worker's scheduler, with the cron sweeper behind it). `client_ids` are
    `chat.Client` pks of the organization. Raises ApplicationError (400, field errors)
    on bad input.
    """
    now = timezone.now()
    start = max(send_at, now) if send_at is not None else now
    return mailing_create(
        organization=organization,
        start_at=start,
        end_at=start + timedelta(seconds=settings.MAILING_NOTIFICATION_TTL),
        transports=transports,
        event=event,
        rule=rule,
        text=text or "",
        template=template,
        context=context,
        client_ids=client_ids,
        tags=tags,
        priority=priority,
        promo=promo,
        name=name,
        kind=Mailing.Kind.NOTIFICATION,
    )


@transaction.atomic
def _status_label(mailing: Mailing) -> str:
    """The status as a reader says it, in their language ("running", "в работе")."""
    return str(mailing.get_status_display()).lower()


def mailing_update(*, mailing: Mailing, data: dict[str, Any]) -> Mailing:
    """Change a mailing. Once started, only its name, priority and end time change."""
    locked = Mailing.objects.select_for_update().get(pk=mailing.pk)
    if locked.status != Mailing.Status.SCHEDULED:
        frozen = sorted(set(data) - _EDITABLE_WHEN_STARTED)
        if frozen:
            raise ApplicationError(
                gettext("The mailing is %(status)s: only name, priority and end_at can change.")
                % {"status": _status_label(locked)},
                code="mailing_started",
                status_code=409,
                fields={
                    f: [gettext("Cannot change once the mailing has started.")] for f in frozen
                },
            )
        if locked.status != Mailing.Status.RUNNING and "end_at" in data:
            raise ApplicationError(
                gettext("The mailing is %(status)s.") % {"status": _status_label(locked)},
                code="mailing_over",
                status_code=409,
                fields={"end_at": [gettext("Cannot change once the mailing is over.")]},
            )
    now = timezone.now()
    values: dict[str, Any] = {f: data.get(f, getattr(locked, f)) for f in MAILING_VALUES}
    if "template" in data and data["template"] is not None and "text" not in data:
        values["text"] = ""
    if "text" in data and data["text"] and "template" not in data:
        values["template"] = None
    mailing_values_check(organization=locked.organization, values=values, now=now, creating=False)
    if "end_at" in data and values["end_at"] <= now:
        raise invalid_input({"end_at": [gettext("The end time is in the past.")]})
    for field, value in values.items():
        setattr(locked, field, value)
    for field in ("name", "promo"):
        if field in data:
            setattr(locked, field, data[field])
    locked.save()
    if locked.status == Mailing.Status.RUNNING and "end_at" in data:
        Delivery.objects.filter(
            pk__in=MailingMessage.objects.filter(mailing=locked).values("pk"),
            status__in=(Delivery.Status.PENDING, Delivery.Status.SENDING),
        ).update(deadline=locked.end_at)
    log.info("mailing_updated", mailing_id=locked.pk, fields=sorted(data))
    if locked.status == Mailing.Status.SCHEDULED and "start_at" in data:
        mailing_schedule_start(locked, now)
    mailing_publish_updated(locked)
    return locked


@transaction.atomic
def mailing_delete(*, mailing: Mailing) -> None:
    locked = Mailing.objects.select_for_update().get(pk=mailing.pk)
    if locked.status == Mailing.Status.RUNNING:
        raise ApplicationError(
            gettext("The mailing is running: cancel it first."),
            code="mailing_running",
            status_code=409,
        )
    # Its deliveries go with it (their messages cascade from them).
    Delivery.objects.filter(
        pk__in=MailingMessage.objects.filter(mailing=locked).values("pk")
    ).delete()
    log.info("mailing_deleted", mailing_id=locked.pk)
    locked.delete()
