"""Mailing writes: templates, mailings, notifications, starting and finishing.

Sending itself (claim, HTTP, record) lives in `mailing.dispatch`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from chat.models import Client
from core.errors import ApplicationError
from core.events import publish_on_commit
from core.jobs import enqueue_on_commit
from core.logging import get_logger
from core.models import Delivery, Organization
from core.outbox import deliveries_insert
from core.redis import get_redis
from core.validators import operator_code_validator, tag_validator
from mailing import rendering
from mailing.models import Mailing, MailingMessage, Template
from mailing.windows import next_opening

log = get_logger(__name__)
_stdlog = logging.getLogger(__name__)

MAX_FILTER_VALUES = 100
MAX_CLIENT_IDS = 10_000
_EDITABLE_WHEN_STARTED = frozenset({"name", "priority", "end_at"})


def _invalid(fields: dict[str, list[str]], message: str = "Invalid input.") -> ApplicationError:
    return ApplicationError(message, code="validation_error", fields=fields)


# --- templates ------------------------------------------------------------------------


def _template_check(template: Template) -> None:
    errors: dict[str, list[str]] = {}
    if not template.title.strip():
        errors["title"] = ["This field may not be blank."]
    if template.transport not in Template.Transport.values:
        errors["transport"] = [
            f"Unsupported transport {template.transport!r}; one of {Template.Transport.values}."
        ]
    variables = template.variables
    if not isinstance(variables, list) or not all(
        isinstance(v, str) and rendering.IDENTIFIER.match(v) for v in variables
    ):
        errors["variables"] = ["A list of identifiers (letters, digits, '_')."]
        variables = []
    try:
        unknown = rendering.unknown_placeholders(
            template.body, [*rendering.CLIENT_FIELDS, *variables]
        )
        if unknown:
            errors["body"] = [
                f"Unknown placeholder(s): {', '.join(unknown)}. Allowed: client fields "
                f"({', '.join(rendering.CLIENT_FIELDS)}) and the declared variables."
            ]
    except ValueError as exc:
        errors["body"] = [str(exc)]
    if errors:
        raise _invalid(errors)


def _template_save(template: Template) -> Template:
    _template_check(template)
    try:
        with transaction.atomic():
            template.save()
    except IntegrityError as exc:
        raise _invalid({"code": ["A template with this code already exists."]}) from exc
    return template


def template_create(
    *,
    organization: Organization,
    title: str,
    code: str,
    body: str,
    transport: str = Template.Transport.SMS,
    variables: Sequence[str] = (),
) -> Template:
    template = _template_save(
        Template(
            organization=organization,
            title=title,
            code=code,
            body=body,
            transport=transport,
            variables=list(variables),
        )
    )
    log.info("template_created", template_id=template.pk, organization_id=organization.pk)
    return template


def _template_users_check(template: Template) -> None:
    """Mailings not rendered yet must still give every variable the template needs:
    a new placeholder would otherwise render empty at send time."""
    needed = set(template.variables or [])
    if not needed or template.pk is None:
        return
    unready = (
        Mailing.objects.filter(template=template)
        .filter(
            Q(status=Mailing.Status.SCHEDULED)
            | Q(status=Mailing.Status.RUNNING, materialized_at__isnull=True)
        )
        .values_list("pk", "context")
    )
    lacking = {pk: sorted(needed - set(context or {})) for pk, context in unready}
    lacking = {pk: names for pk, names in lacking.items() if names}
    if lacking:
        detail = "; ".join(f"mailing {pk} lacks {', '.join(n)}" for pk, n in lacking.items())
        raise _invalid(
            {"variables": [f"Mailings using this template do not give them: {detail}."]},
            "The template is used by mailings that lack its variables.",
        )


def template_update(*, template: Template, data: dict[str, Any]) -> Template:
    for field in ("title", "code", "body", "transport", "variables"):
        if field in data:
            setattr(template, field, list(data[field]) if field == "variables" else data[field])
    _template_users_check(template)
    _template_save(template)
    log.info("template_updated", template_id=template.pk, fields=sorted(data))
    return template


def template_delete(*, template: Template) -> None:
    if template.mailings.exists():
        raise ApplicationError(
            "The template is used by mailings.", code="template_in_use", status_code=409
        )
    log.info("template_deleted", template_id=template.pk)
    template.delete()


# --- mailings: validation -------------------------------------------------------------


def _check_list(values: Any, field: str, validator: Any, errors: dict[str, list[str]]) -> list[str]:
    if not isinstance(values, list | tuple):
        errors[field] = ["Expected a list."]
        return []
    if len(values) > MAX_FILTER_VALUES:
        errors[field] = [f"At most {MAX_FILTER_VALUES} values."]
        return []
    bad = []
    for value in values:
        try:
            if not isinstance(value, str):
                raise TypeError
            validator(value)
        except Exception:
            bad.append(repr(value))
    if bad:
        errors[field] = [f"Invalid value(s): {', '.join(bad[:10])}. {validator.message}"]
    return list(dict.fromkeys(str(v) for v in values))


def _check_context(context: Any, errors: dict[str, list[str]]) -> dict[str, Any]:
    if not isinstance(context, dict):
        errors["context"] = ["Expected an object of name -> text or number."]
        return {}
    bad = [
        k
        for k, v in context.items()
        if not rendering.IDENTIFIER.match(str(k))
        or not isinstance(v, str | int | float | bool)
        or len(str(v)) > 1000
    ]
    if bad:
        errors["context"] = [
            f"Invalid entries: {', '.join(map(str, bad[:10]))} "
            "(names are identifiers, values text or numbers up to 1000 characters)."
        ]
    return dict(context)


def _validate(
    *, organization: Organization, values: dict[str, Any], now: datetime, creating: bool
) -> None:
    """Check a mailing's full set of values; raises ApplicationError with field errors."""
    errors: dict[str, list[str]] = {}
    start_at, end_at = values["start_at"], values["end_at"]
    if start_at is None:
        errors["start_at"] = ["This field is required."]
    if end_at is None:
        errors["end_at"] = ["This field is required."]
    if start_at is not None and end_at is not None:
        if end_at <= start_at:
            errors["end_at"] = ["The end time must be after the start time."]
        elif creating and end_at <= now:
            errors["end_at"] = ["The end time is in the past."]
    values["operator_codes"] = _check_list(
        values["operator_codes"], "operator_codes", operator_code_validator, errors
    )
    values["tags"] = _check_list(values["tags"], "tags", tag_validator, errors)
    values["context"] = _check_context(values["context"], errors)
    priority = values["priority"]
    if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 10:
        errors["priority"] = ["An integer from 1 (lowest) to 10 (highest)."]
    ws, we = values["window_start"], values["window_end"]
    if (ws is None) != (we is None):
        errors["window_end" if we is None else "window_start"] = [
            "Give both window_start and window_end, or neither."
        ]
    elif ws is not None and ws == we:
        errors["window_end"] = ["The window must not be empty (start equals end)."]
    template: Template | None = values["template"]
    text: str = values["text"] or ""
    if template is not None and template.organization_id != organization.pk:
        errors["template"] = ["Template not found."]
    elif template is not None and text:
        errors["text"] = ["Give a text or a template, not both."]
    elif template is not None:
        missing = [v for v in template.variables if v not in values["context"]]
        if missing:
            errors["context"] = [f"The template needs: {', '.join(missing)}."]
    elif not text.strip():
        errors["text"] = ["Give a text or a template."]
    else:
        try:
            unknown = rendering.unknown_placeholders(
                text, [*rendering.CLIENT_FIELDS, *values["context"]]
            )
            if unknown:
                errors["text"] = [
                    f"Unknown placeholder(s): {', '.join(unknown)} "
                    "(client fields or context names)."
                ]
        except ValueError as exc:
            errors["text"] = [str(exc)]
    client_ids = values["client_ids"]
    if not isinstance(client_ids, list | tuple) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in client_ids
    ):
        errors["client_ids"] = ["A list of client ids."]
    elif len(client_ids) > MAX_CLIENT_IDS:
        errors["client_ids"] = [f"At most {MAX_CLIENT_IDS} ids."]
    else:
        ids = list(dict.fromkeys(client_ids))
        known = set(
            Client.objects.filter(organization=organization, pk__in=ids).values_list(
                "pk", flat=True
            )
        )
        unknown_ids = [i for i in ids if i not in known]
        if unknown_ids:
            errors["client_ids"] = [f"Unknown client id(s): {unknown_ids[:20]}."]
        values["client_ids"] = ids
    if values["kind"] == Mailing.Kind.NOTIFICATION and not (
        values["client_ids"] or values["tags"] or values["operator_codes"]
    ):
        errors["client_ids"] = ["Give client ids and/or tags."]
    if errors:
        raise _invalid(errors)


def mailing_validate(*, organization: Organization, values: dict[str, Any], creating: bool) -> None:
    """Check a mailing's values (admin forms use it); raises ApplicationError."""
    _validate(organization=organization, values=values, now=timezone.now(), creating=creating)


def template_validate(*, template: Template) -> None:
    _template_check(template)


def _schedule_start(mailing: Mailing, now: datetime) -> None:
    from mailing.dispatch import mailing_queue
    from mailing.jobs import mailing_start

    queue = mailing_queue(mailing.priority)
    if mailing.start_at <= now:
        enqueue_on_commit(mailing_start, mailing.pk, queue=queue)
    else:
        # The cron sweeper starts it too if this job is lost (e.g. Redis restarted).
        enqueue_on_commit(mailing_start, mailing.pk, queue=queue, at=mailing.start_at)


# --- mailings: writes -----------------------------------------------------------------


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
        "kind": kind,
    }
    _validate(organization=organization, values=values, now=now, creating=True)
    mailing = Mailing.objects.create(
        organization=organization,
        name=name,
        promo=promo,
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
    _schedule_start(mailing, now)
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
) -> Mailing:
    """A transactional send, now: explicit clients and tag-selected ones, merged.

    Creates a mailing that starts now (ends after `MAILING_NOTIFICATION_TTL`) and
    enqueues its dispatch on commit. `client_ids` are `chat.Client` pks of the
    organization. Raises ApplicationError (400, field errors) on bad input.
    """
    now = timezone.now()
    return mailing_create(
        organization=organization,
        start_at=now,
        end_at=now + timedelta(seconds=settings.MAILING_NOTIFICATION_TTL),
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
def mailing_update(*, mailing: Mailing, data: dict[str, Any]) -> Mailing:
    """Change a mailing. Once started, only its name, priority and end time change."""
    locked = Mailing.objects.select_for_update().get(pk=mailing.pk)
    if locked.status != Mailing.Status.SCHEDULED:
        frozen = sorted(set(data) - _EDITABLE_WHEN_STARTED)
        if frozen:
            raise ApplicationError(
                f"The mailing is {locked.status}: only name, priority and end_at can change.",
                code="mailing_started",
                status_code=409,
                fields={f: ["Cannot change once the mailing has started."] for f in frozen},
            )
        if locked.status != Mailing.Status.RUNNING and "end_at" in data:
            raise ApplicationError(
                f"The mailing is {locked.status}.",
                code="mailing_over",
                status_code=409,
                fields={"end_at": ["Cannot change once the mailing is over."]},
            )
    now = timezone.now()
    values: dict[str, Any] = {
        f: data.get(f, getattr(locked, f))
        for f in (
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
            "kind",
        )
    }
    if "template" in data and data["template"] is not None and "text" not in data:
        values["text"] = ""
    if "text" in data and data["text"] and "template" not in data:
        values["template"] = None
    _validate(organization=locked.organization, values=values, now=now, creating=False)
    if "end_at" in data and values["end_at"] <= now:
        raise _invalid({"end_at": ["The end time is in the past."]})
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
        _schedule_start(locked, now)
    return locked


@transaction.atomic
def mailing_cancel(*, mailing: Mailing) -> Mailing:
    """Stop a mailing: nothing pending is sent any more (in-flight calls finish)."""
    locked = Mailing.objects.select_for_update().get(pk=mailing.pk)
    if locked.status in (Mailing.Status.FINISHED, Mailing.Status.CANCELLED):
        return locked
    now = timezone.now()
    pending = list(
        Delivery.objects.filter(
            pk__in=MailingMessage.objects.filter(mailing=locked).values("pk"),
            status=Delivery.Status.PENDING,
        ).values_list("pk", flat=True)
    )
    expired = Delivery.objects.filter(pk__in=pending, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.EXPIRED, last_error="mailing cancelled", updated_at=now
    )
    locked.status = Mailing.Status.CANCELLED
    locked.finished_at = now
    locked.save(update_fields=["status", "finished_at", "updated_at"])
    log.info(
        "mailing_cancelled",
        mailing_id=locked.pk,
        organization_id=locked.organization_id,
        expired=expired,
        expired_message_ids=pending,
    )
    _publish_finished(locked)
    return locked


@transaction.atomic
def mailing_delete(*, mailing: Mailing) -> None:
    locked = Mailing.objects.select_for_update().get(pk=mailing.pk)
    if locked.status == Mailing.Status.RUNNING:
        raise ApplicationError(
            "The mailing is running: cancel it first.", code="mailing_running", status_code=409
        )
    # Its deliveries go with it (their messages cascade from them).
    Delivery.objects.filter(
        pk__in=MailingMessage.objects.filter(mailing=locked).values("pk")
    ).delete()
    log.info("mailing_deleted", mailing_id=locked.pk)
    locked.delete()


# --- starting: the audience becomes message rows --------------------------------------


def audience(mailing: Mailing) -> QuerySet[Client]:
    """Clients a mailing goes to: the filter's (AND across, OR within) plus explicit ids."""
    qs = Client.objects.filter(organization_id=mailing.organization_id)
    has_filter = bool(mailing.operator_codes or mailing.tags)
    selected = Q()
    if mailing.operator_codes:
        selected &= Q(operator_code__in=mailing.operator_codes)
    if mailing.tags:
        selected &= Q(tag__in=mailing.tags)
    if mailing.client_ids:
        qs = qs.filter((selected if has_filter else Q(pk__in=[])) | Q(pk__in=mailing.client_ids))
    elif has_filter:
        qs = qs.filter(selected)
    elif mailing.kind == Mailing.Kind.NOTIFICATION:
        qs = qs.none()
    if mailing.promo:
        qs = qs.filter(promo_opt_out=False)
    return qs


def mailing_start(*, mailing_id: int) -> bool:
    """Move a due scheduled mailing to running (once), then materialize it."""
    now = timezone.now()
    with transaction.atomic():
        started = Mailing.objects.filter(
            pk=mailing_id, status=Mailing.Status.SCHEDULED, start_at__lte=now
        ).update(status=Mailing.Status.RUNNING, started_at=now, updated_at=now)
        if started:
            log.info("mailing_started", mailing_id=mailing_id)
    if not started:
        early = Mailing.objects.filter(
            pk=mailing_id, status=Mailing.Status.SCHEDULED, start_at__gt=now
        ).first()
        if early is not None:
            # Woken before its time (a job scheduled by RQ's whole-second rounding, a
            # clock ahead on the scheduler's host, a start_at moved later): wait for the
            # time again instead of leaving it to the sweeper, up to 10 s late.
            log.info("mailing_start_early", mailing_id=mailing_id, start_at=early.start_at)
            _schedule_start(early, now)
            return False
    mailing_materialize(mailing_id=mailing_id)
    return bool(started)


def _message_rows(
    mailing: Mailing, clients: list[dict[str, Any]], now: datetime
) -> list[tuple[int, str, str, datetime | None, str]]:
    """(phone, text, status, next_attempt_at, last_error) per client, in order."""
    base_values = {str(k): str(v) for k, v in mailing.context.items()}
    body = mailing.template.body if mailing.template is not None else mailing.text
    rows: list[tuple[int, str, str, datetime | None, str]] = []
    for client in clients:
        values = {**base_values, **rendering.client_values_from_dict(client)}
        opening = next_opening(now, client["timezone"], mailing.window_start, mailing.window_end)
        text = rendering.render(body, values)
        if opening >= mailing.end_at:
            rows.append(
                (
                    int(client["phone"]),
                    text,
                    Delivery.Status.EXPIRED,
                    None,
                    "window does not open before the end time",
                )
            )
        else:
            rows.append(
                (
                    int(client["phone"]),
                    text,
                    Delivery.Status.PENDING,
                    None if opening == now else opening,
                    "",
                )
            )
    return rows


def _messages_insert(*, mailing_id: int, pairs: list[tuple[int, int]]) -> None:
    """Insert (delivery_id, client_id) message rows in one statement per 500."""
    table = connection.ops.quote_name(MailingMessage._meta.db_table)
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        for start in range(0, len(pairs), 500):
            part = pairs[start : start + 500]
            params: list[Any] = []
            for delivery_id, client_id in part:
                params += [delivery_id, mailing_id, client_id, stamp]
            values = ", ".join(["(%s, %s, %s, %s)"] * len(part))
            cursor.execute(
                f"INSERT INTO {table} (delivery_id, mailing_id, client_id, created_at) "
                f"VALUES {values}",
                params,
            )


def mailing_materialize(*, mailing_id: int) -> int:
    """Create the message rows of a running mailing, in short chunks; resumable.

    Each chunk locks the mailing row, continues after `audience_cursor` and advances
    it in the same transaction, so a crash or a second materializer never creates
    a second message for a client (the unique constraint would refuse it anyway).
    Dispatch starts after the first chunk. Returns how many messages were created.
    """
    from mailing import dispatch

    created = 0
    chunk = settings.MAILING_MATERIALIZE_CHUNK
    while True:
        now = timezone.now()
        # Tells the cron sweeper a materializer is alive (it resumes a dead one).
        get_redis().set(f"mailing:materialize:{int(mailing_id)}", 1, ex=60)
        with transaction.atomic():
            mailing = (
                Mailing.objects.select_for_update(of=("self",))
                .select_related("template")
                .filter(pk=mailing_id)
                .first()
            )
            if mailing is None or mailing.status != Mailing.Status.RUNNING:
                return created
            if mailing.materialized_at is not None:
                break
            clients = list(
                audience(mailing)
                .filter(pk__gt=mailing.audience_cursor)
                .order_by("pk")
                .values("pk", *rendering.CLIENT_FIELDS)[:chunk]
            )
            if not clients:
                mailing.materialized_at = now
                mailing.save(update_fields=["materialized_at", "updated_at"])
                log.info("mailing_materialized", mailing_id=mailing.pk, total=created)
                break
            rows = _message_rows(mailing, clients, now)
            # Phones are unique per organization: they match returned ids to clients.
            by_phone = {int(c["phone"]): c["pk"] for c in clients}
            ids = deliveries_insert(
                organization_id=mailing.organization_id,
                source=Delivery.Source.MAILING,
                rows=rows,
                deadline=mailing.end_at,
            )
            pairs = sorted((delivery_id, by_phone[phone]) for delivery_id, phone in ids)
            _messages_insert(mailing_id=mailing.pk, pairs=pairs)
            mailing.audience_cursor = clients[-1]["pk"]
            mailing.save(update_fields=["audience_cursor", "updated_at"])
            log.info(
                "mailing_messages_created",
                mailing_id=mailing.pk,
                count=len(pairs),
                first_message_id=pairs[0][0],
                last_message_id=pairs[-1][0],
                # Every id at INFO, so `grep <message id>` finds its creation without DEBUG.
                message_ids=[delivery_id for delivery_id, _ in pairs],
                deferred=sum(1 for r in rows if r[3] is not None),
            )
            if _stdlog.isEnabledFor(logging.DEBUG):  # one line per message, to grep by id
                for delivery_id, client_id in pairs:
                    log.debug(
                        "mailing_message_created",
                        mailing_id=mailing.pk,
                        message_id=delivery_id,
                        delivery_id=delivery_id,
                        client_id=client_id,
                    )
            if created == 0:
                dispatch.lanes_enqueue_on_commit(mailing)
            created += len(pairs)
    # Nothing to send at all (empty audience): finish now.
    dispatch.mailing_finish_if_done(mailing_id=mailing_id)
    return created


# --- finishing ------------------------------------------------------------------------


def _publish_finished(mailing: Mailing) -> None:
    from mailing.selectors import mailing_counts

    publish_on_commit(
        mailing.organization_id,
        "mailing_finished",
        {
            "id": mailing.pk,
            "status": mailing.status,
            "finished_at": mailing.finished_at.isoformat() if mailing.finished_at else None,
            "counts": mailing_counts(mailing_id=mailing.pk),
        },
    )


# --- daily report ---------------------------------------------------------------------


def mailing_report_build(*, organization: Organization, since: datetime) -> str | None:
    """Plain-text statistics of the mailings active since `since`; None if there are none."""
    from mailing.selectors import STATUSES, mailings_counts

    mailings = list(
        Mailing.objects.filter(organization=organization)
        .filter(
            Q(created_at__gte=since) | Q(finished_at__gte=since) | Q(status=Mailing.Status.RUNNING)
        )
        .order_by("pk")
    )
    if not mailings:
        return None
    counts = mailings_counts(mailing_ids=[m.pk for m in mailings])
    lines = [
        f"Mailing statistics for {organization.name} since {since:%Y-%m-%d %H:%M} UTC",
        "",
        "id\tstatus\t" + "\t".join(STATUSES) + "\ttotal\tname",
    ]
    for m in mailings:
        c = counts[m.pk]
        lines.append(
            f"{m.pk}\t{m.status}\t"
            + "\t".join(str(c[s]) for s in STATUSES)
            + f"\t{c['total']}\t{m.name}"
        )
    return "\n".join(lines) + "\n"


def mailing_report_send(*, organization: Organization, now: datetime | None = None) -> bool:
    """Email the report to the organization's admins (once per day). True if sent."""
    from django.contrib.auth import get_user_model
    from django.core.mail import send_mail

    from core.models import Membership

    now = now or timezone.now()
    recipients = sorted(
        {
            email
            for email in get_user_model()
            .objects.filter(
                memberships__organization=organization,
                memberships__role=Membership.Role.ADMIN,
                is_active=True,
            )
            .exclude(email="")
            .values_list("email", flat=True)
        }
    )
    if not recipients:
        return False
    body = mailing_report_build(organization=organization, since=now - timedelta(days=1))
    if body is None:
        return False
    key = f"mailing:report:{organization.pk}:{now:%Y-%m-%d}"
    if not get_redis().set(key, 1, nx=True, ex=2 * 86400):
        return False  # already sent today (the job ran twice)
    send_mail(
        subject=f"[{organization.slug}] Daily mailing statistics {now:%Y-%m-%d}",
        message=body,
        from_email=None,
        recipient_list=recipients,
    )
    log.info("mailing_report_sent", organization_id=organization.pk, recipients=len(recipients))
    return True


def mailing_report_send_all() -> int:
    sent = 0
    for organization in Organization.objects.all():
        try:
            sent += mailing_report_send(organization=organization)
        except Exception:
            log.exception("mailing_report_failed", organization_id=organization.pk)
    return sent
