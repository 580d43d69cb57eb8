"""Event-driven notifications: an organization's rules, and the events external services post.

An `EventRule` says: when event `event` arrives for a client, send `template` over
`transports` after `delay_seconds` (0: now) with `priority`, unless an event named in
`cancel_events` arrives for that client first (a welcome now; a reminder after 3 days
unless the client did the thing). A delayed action is a scheduled notification
(`notification_send(send_at=...)`): it is started by the worker's scheduler at its time
(within a second), with the cron sweeper behind it, so it survives restarts.

`event_receive` processes an event exactly once: the `Event` row, unique per
(organization, idempotency_key), is inserted in the same transaction that cancels and
creates the notifications. A second post with the same key (a retry after a timeout,
two workers of the caller) finds the row and processes nothing again; it only counts
the repeat on the row (`duplicates`, `last_duplicate_at`, one UPDATE with F(), so
concurrent repeats are each counted). Of two concurrent posts one inserts and the other
waits for its commit, then finds it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext

from chat.models import Client
from core.errors import ApplicationError
from core.events import publish_on_commit
from core.logging import get_logger
from core.models import Organization
from mailing.models import Event, EventRule, Mailing, Template
from mailing.representations import event_event_data
from mailing.services.lifecycle import mailing_cancel
from mailing.services.mailings import notification_send
from mailing.services.validation import invalid_input

log = get_logger(__name__)

MAX_DELAY_SECONDS = 366 * 24 * 3600


def event_rule_create(
    *,
    organization: Organization,
    event: str,
    template: Template,
    transports: list[str] | None = None,
    delay_seconds: int = 0,
    priority: int = 5,
    promo: bool = False,
    cancel_events: list[str] | None = None,
) -> EventRule:
    _rule_values_check(
        organization=organization,
        values={
            "template": template,
            "delay_seconds": delay_seconds,
            "cancel_events": cancel_events or [],
        },
    )
    rule = EventRule.objects.create(
        organization=organization,
        event=event,
        template=template,
        transports=list(transports or []),
        delay_seconds=delay_seconds,
        priority=priority,
        promo=promo,
        cancel_events=sorted(set(cancel_events or [])),
    )
    log.info("event_rule_created", event_rule_id=rule.pk, organization_id=organization.pk)
    return rule


# The fields a PATCH may change; `organization` never changes.
EVENT_RULE_FIELDS = (
    "event",
    "template",
    "transports",
    "delay_seconds",
    "priority",
    "promo",
    "cancel_events",
    "active",
)


def _rule_values_check(*, organization: Organization, values: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    if values["template"].organization_id != organization.pk:
        errors["template"] = [gettext("Template not found.")]
    if not 0 <= values["delay_seconds"] <= MAX_DELAY_SECONDS:
        errors["delay_seconds"] = [gettext("From 0 to %(max)d.") % {"max": MAX_DELAY_SECONDS}]
    if values["cancel_events"] and not values["delay_seconds"]:
        errors["cancel_events"] = [gettext("Only a delayed action can be cancelled.")]
    if errors:
        raise invalid_input(errors)


@transaction.atomic
def event_rule_update(*, rule: EventRule, data: dict[str, Any]) -> EventRule:
    """Change a rule (the given fields of `EVENT_RULE_FIELDS`), validated as a whole the way
    `event_rule_create` validates a new one. Notifications it already scheduled keep
    their template and time; its new `cancel_events` apply to them (they are read when an
    event arrives)."""
    locked = EventRule.objects.select_for_update().get(pk=rule.pk)
    values = {f: data.get(f, getattr(locked, f)) for f in EVENT_RULE_FIELDS}
    values["transports"] = list(values["transports"] or [])
    values["cancel_events"] = sorted(set(values["cancel_events"] or []))
    _rule_values_check(organization=locked.organization, values=values)
    for field, value in values.items():
        setattr(locked, field, value)
    locked.save()
    log.info(
        "event_rule_updated",
        event_rule_id=locked.pk,
        organization_id=locked.organization_id,
        fields=sorted(data),
    )
    return locked


def event_rule_delete(*, rule: EventRule) -> None:
    log.info("event_rule_deleted", event_rule_id=rule.pk, organization_id=rule.organization_id)
    rule.delete()


def _client_find(organization: Organization, reference: str) -> Client | None:
    """A client by its uuid, phone (7XXXXXXXXXX) or email address."""
    clients = Client.objects.filter(organization=organization)
    try:
        return clients.filter(uuid=uuid.UUID(reference)).first()
    except ValueError:
        pass
    if "@" in reference:
        return clients.filter(email__iexact=reference).order_by("pk").first()
    return clients.filter(phone=reference).first() if reference else None


def event_receive(
    *,
    organization: Organization,
    name: str,
    client: str,
    data: dict[str, Any],
    idempotency_key: str,
) -> tuple[Event, bool]:
    """Record and process an event once. Returns (event, created): `created` is False
    when the key was seen before (nothing processed again). Raises ApplicationError
    (400 with field errors: unknown client, data a rule's template lacks; 409: the key
    was used for another event)."""
    found = _client_find(organization, client)
    if found is None:
        raise invalid_input({"client": [gettext("Client not found (a uuid, phone or email).")]})
    try:
        with transaction.atomic():
            event = Event.objects.create(
                organization=organization,
                name=name,
                client=found,
                data=data,
                idempotency_key=idempotency_key,
            )
            _process(event)
    except IntegrityError:
        seen = Event.objects.filter(
            organization=organization, idempotency_key=idempotency_key
        ).first()
        if seen is None:  # not the key's constraint: a real error
            raise
        if seen.name != name or seen.client_id != found.pk:
            raise ApplicationError(
                gettext("This idempotency key was used for another event."),
                code="idempotency_key_reused",
                status_code=409,
                fields={"idempotency_key": [gettext("Already used for another event.")]},
            ) from None
        _duplicate_count(seen)
        log.info(
            "event_duplicate",
            event_id=seen.pk,
            organization_id=organization.pk,
            client_id=found.pk,
            duplicates=seen.duplicates,
        )
        # The console shows a retried post too (nothing was processed again).
        publish_on_commit(organization.pk, "event_received", event_event_data(seen, "duplicate"))
        return seen, False
    return event, True


def _duplicate_count(event: Event) -> None:
    """Count one more repeat of `event`'s key, in the database (F(): no read-modify-write
    for a concurrent repeat to overwrite), and read the new values back onto `event`.
    `last_duplicate_at` never moves back (Greatest): of two concurrent repeats the later
    clock wins whichever commits last (Coalesce: SQLite's Greatest of a NULL is NULL)."""
    now = timezone.now()
    Event.objects.filter(pk=event.pk).update(
        duplicates=F("duplicates") + 1,
        last_duplicate_at=Coalesce(Greatest(F("last_duplicate_at"), Value(now)), Value(now)),
    )
    event.refresh_from_db(fields=["duplicates", "last_duplicate_at"])


def _process(event: Event) -> None:
    """Cancel what this event cancels, then run the rules of its name. Inside the
    transaction that inserted the event."""
    assert event.client is not None
    now = timezone.now()
    waiting = (
        Mailing.objects.select_related("rule")
        .filter(
            organization_id=event.organization_id,
            event__client=event.client,
            rule__isnull=False,
            status=Mailing.Status.SCHEDULED,
        )
        .filter(~Q(event=event))
    )
    cancelled = []
    for mailing in waiting:
        if mailing.rule is not None and event.name in (mailing.rule.cancel_events or []):
            mailing_cancel(mailing=mailing)
            cancelled.append(mailing.pk)
    context = {str(k): v for k, v in event.data.items()}
    created = []
    for rule in EventRule.objects.filter(
        organization_id=event.organization_id, event=event.name, active=True
    ).select_related("template"):
        try:
            with transaction.atomic():
                mailing = notification_send(
                    organization=event.organization,
                    template=rule.template,
                    client_ids=[event.client.pk],
                    context=context,
                    priority=rule.priority,
                    promo=rule.promo,
                    transports=rule.transports,
                    send_at=now + timedelta(seconds=rule.delay_seconds)
                    if rule.delay_seconds
                    else None,
                    name=f"{event.name}: {rule.template.title}",
                    event=event,
                    rule=rule,
                )
        except ApplicationError as exc:
            # The event's data does not give what a rule's template needs: refuse the
            # whole event (nothing recorded), so the caller can fix it and post again.
            detail = "; ".join(str(m) for msgs in (exc.fields or {}).values() for m in msgs)
            raise invalid_input({"data": [f"rule {rule.pk}: {detail or exc}"]}) from exc
        created.append(mailing.pk)
    event.cancelled = cancelled
    event.save(update_fields=["cancelled"])
    publish_on_commit(event.organization_id, "event_received", event_event_data(event, "processed"))
    log.info(
        "event_processed",
        event_id=event.pk,
        organization_id=event.organization_id,
        client_id=event.client.pk,
        name=event.name,
        mailing_ids=created,
        cancelled_mailing_ids=cancelled,
    )
