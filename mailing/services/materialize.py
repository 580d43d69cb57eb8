"""Starting a mailing: its audience becomes message rows (Delivery + MailingMessage)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from chat.models import Client
from core.logging import get_logger
from core.models import Delivery
from core.outbox import deliveries_insert
from core.redis import get_redis
from mailing import rendering
from mailing.models import Mailing, MailingMessage
from mailing.queues import lanes_enqueue_on_commit
from mailing.services.lifecycle import (
    mailing_finish_if_done,
    mailing_schedule_start,
    mailings_start,
)
from mailing.windows import next_opening

log = get_logger(__name__)
_stdlog = logging.getLogger(__name__)


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
    started = mailings_start(now=now, mailing_ids=[mailing_id])
    if not started:
        early = Mailing.objects.filter(
            pk=mailing_id, status=Mailing.Status.SCHEDULED, start_at__gt=now
        ).first()
        if early is not None:
            # Woken before its time (a job scheduled by RQ's whole-second rounding, a
            # clock ahead on the scheduler's host, a start_at moved later): wait for the
            # time again instead of leaving it to the sweeper, up to 10 s late.
            log.info("mailing_start_early", mailing_id=mailing_id, start_at=early.start_at)
            mailing_schedule_start(early, now)
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
                lanes_enqueue_on_commit(mailing)
            created += len(pairs)
    # Nothing to send at all (empty audience): finish now.
    mailing_finish_if_done(mailing_id=mailing_id)
    return created
