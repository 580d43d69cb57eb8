"""Starting a mailing: its audience becomes message rows (Delivery + MailingMessage)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
from mailing import context, rendering
from mailing.models import Mailing, MailingMessage, MailingSkip, Transport
from mailing.queues import lanes_enqueue_on_commit
from mailing.services.lifecycle import (
    mailing_finish_if_done,
    mailing_schedule_start,
    mailings_start,
)
from mailing.services.variants import template_variants, variant_for
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
    # Opt-outs are per transport: `choose_transport` skips (and counts) them.
    return qs


def mailing_start(*, mailing_id: int, inline_lane: bool = False) -> bool:
    """Move a due scheduled mailing to running (once), then materialize it.

    With `inline_lane` (the start job), a mailing whose whole audience fits in one batch
    enqueues no lane: the return value True then tells the caller to run lane 0 itself,
    at once, in the same job (a notification due at `send_at` then waits for one free
    worker, not for three more queued jobs). Without it, True means "started here".
    """
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
    if inline_lane:
        return mailing_materialize(mailing_id=mailing_id, inline_lane=True) < 0
    mailing_materialize(mailing_id=mailing_id)
    return bool(started)


# What a client record needs to be rendered and routed.
_CLIENT_VALUES = (
    "pk",
    *rendering.CLIENT_FIELDS,
    "promo_opt_out",
    "email_promo_opt_out",
    "email_undeliverable",
    "language",  # picks the template's variant (mailing/services/variants.py)
)


def mailing_transports(mailing: Mailing) -> list[str]:
    """The mailing's transports in order of preference."""
    if mailing.transports:
        return list(mailing.transports)
    if mailing.template is not None:
        return [mailing.template.transport]
    return [Transport.SMS]


def choose_transport(
    client: dict[str, Any], transports: list[str], promo: bool
) -> tuple[str | None, str]:
    """(the first usable transport, "") or (None, why none is): a client without a usable
    address on one transport falls to the next."""
    reasons: list[str] = []
    for transport in transports:
        if transport == Transport.EMAIL:
            if not client["email"]:
                reasons.append(MailingSkip.Reason.NO_ADDRESS)
            elif client["email_undeliverable"]:
                reasons.append(MailingSkip.Reason.UNDELIVERABLE)
            elif promo and client["email_promo_opt_out"]:
                reasons.append(MailingSkip.Reason.OPTED_OUT)
            else:
                return transport, ""
        elif transport == Transport.SMS:
            if not client["phone"]:
                reasons.append(MailingSkip.Reason.NO_ADDRESS)
            elif promo and client["promo_opt_out"]:
                reasons.append(MailingSkip.Reason.OPTED_OUT)
            else:
                return transport, ""
    # The most telling reason: an opt-out or a bounce over a missing address.
    specific = [r for r in reasons if r != MailingSkip.Reason.NO_ADDRESS]
    return None, (specific[0] if specific else MailingSkip.Reason.NO_ADDRESS)


@dataclass
class _Planned:
    client_id: int
    key: int  # keys the bulk insert's returned ids: the phone, or -client id without one
    transport: str
    address: str
    subject: str
    html: str
    row: tuple[int, str, str, datetime | None, str]


def _message_rows(
    mailing: Mailing, clients: list[dict[str, Any]], now: datetime
) -> tuple[list[_Planned], list[tuple[int, str]]]:
    """The messages to create, and the (client id, reason) of the clients skipped."""
    template = mailing.template
    base_values = {str(k): str(v) for k, v in mailing.context.items()}
    body = template.body if template is not None else mailing.text
    transports = mailing_transports(mailing)
    provider = context.provider_for(template.code if template is not None else None)
    per_client = provider.collect(mailing.organization_id, clients, now)
    variants = template_variants(template)
    planned: list[_Planned] = []
    skipped: list[tuple[int, str]] = []
    for client in clients:
        transport, reason = choose_transport(client, transports, mailing.promo)
        if transport is None:
            skipped.append((client["pk"], reason))
            continue
        values = {**base_values, **per_client[client["pk"]]}
        opening = next_opening(now, client["timezone"], mailing.window_start, mailing.window_end)
        # The client's language's texts, else the template's own (issue 16).
        texts = variant_for(template, variants, client["language"]) if template else None
        text = rendering.render(texts.body if texts is not None else body, values)
        key = int(client["phone"]) if client["phone"] else -client["pk"]
        row: tuple[int, str, str, datetime | None, str]
        if opening >= mailing.end_at:
            row = (
                key,
                text,
                Delivery.Status.EXPIRED,
                None,
                "window does not open before the end time",
            )
        else:
            row = (key, text, Delivery.Status.PENDING, None if opening == now else opening, "")
        email = transport == Transport.EMAIL and texts is not None
        planned.append(
            _Planned(
                client_id=client["pk"],
                key=key,
                transport=transport,
                address=client["email"] if transport == Transport.EMAIL else "",
                subject=rendering.render(texts.subject, values)[:255] if texts and email else "",
                html=rendering.render_html(texts.html_body, values) if texts and email else "",
                row=row,
            )
        )
    return planned, skipped


def _messages_insert(*, mailing_id: int, messages: list[tuple[int, _Planned]]) -> None:
    """Insert (delivery_id, planned) message rows in one statement per 500."""
    table = connection.ops.quote_name(MailingMessage._meta.db_table)
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        for start in range(0, len(messages), 500):
            part = messages[start : start + 500]
            params: list[Any] = []
            for delivery_id, p in part:
                params += [
                    delivery_id,
                    mailing_id,
                    p.client_id,
                    p.transport,
                    p.address,
                    p.subject,
                    p.html,
                    stamp,
                ]
            values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(part))
            cursor.execute(
                f"INSERT INTO {table} (delivery_id, mailing_id, client_id, transport, address, "
                f"subject, html, created_at) VALUES {values}",
                params,
            )


def _skips_insert(*, mailing_id: int, skipped: list[tuple[int, str]]) -> None:
    if not skipped:
        return
    MailingSkip.objects.bulk_create(
        [MailingSkip(mailing_id=mailing_id, client_id=pk, reason=r) for pk, r in skipped],
        ignore_conflicts=True,
    )
    log.info(
        "mailing_clients_skipped",
        mailing_id=mailing_id,
        count=len(skipped),
        client_ids=[pk for pk, _ in skipped],
        reasons=sorted({r for _, r in skipped}),
    )


def mailing_materialize(*, mailing_id: int, inline_lane: bool = False) -> int:
    """Create the message rows of a running mailing, in short chunks; resumable.

    Each chunk locks the mailing row, continues after `audience_cursor` and advances
    it in the same transaction, so a crash or a second materializer never creates
    a second message for a client (the unique constraint would refuse it anyway).
    Dispatch starts after the first chunk. Returns how many messages were created.

    With `inline_lane`, an audience that is one chunk of at most `MAILING_BATCH_SIZE`
    messages gets no lane job: the return value is then minus the count, and the caller
    runs lane 0 itself. If the caller dies first, the sweeper enqueues the lanes of a
    materialized mailing that nobody holds, as after any crash.
    """
    created = 0
    inline = False
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
                .values(*_CLIENT_VALUES)[:chunk]
            )
            if not clients:
                mailing.materialized_at = now
                mailing.save(update_fields=["materialized_at", "updated_at"])
                log.info("mailing_materialized", mailing_id=mailing.pk, total=created)
                break
            planned, skipped = _message_rows(mailing, clients, now)
            _skips_insert(mailing_id=mailing.pk, skipped=skipped)
            by_key = {p.key: p for p in planned}
            ids = deliveries_insert(
                organization_id=mailing.organization_id,
                source=Delivery.Source.MAILING,
                rows=[p.row for p in planned],
                deadline=mailing.end_at,
            )
            messages = sorted(
                ((delivery_id, by_key[key]) for delivery_id, key in ids), key=lambda m: m[0]
            )
            phoneless = [delivery_id for delivery_id, key in ids if key < 0]
            if phoneless:  # the negative key only matched ids to clients: no phone (NULL)
                Delivery.objects.filter(pk__in=phoneless).update(phone=None)
            _messages_insert(mailing_id=mailing.pk, messages=messages)
            pairs = [(delivery_id, p.client_id) for delivery_id, p in messages]
            mailing.audience_cursor = clients[-1]["pk"]
            mailing.save(update_fields=["audience_cursor", "updated_at"])
            log.info(
                "mailing_messages_created",
                mailing_id=mailing.pk,
                count=len(pairs),
                first_message_id=pairs[0][0] if pairs else None,
                last_message_id=pairs[-1][0] if pairs else None,
                # Every id at INFO, so `grep <message id>` finds its creation without DEBUG.
                message_ids=[delivery_id for delivery_id, _ in pairs],
                deferred=sum(1 for p in planned if p.row[3] is not None),
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
            if created == 0 and pairs:
                whole = len(clients) < chunk  # this chunk is the whole audience
                if inline_lane and whole and len(pairs) <= settings.MAILING_BATCH_SIZE:
                    inline = True
                else:
                    lanes_enqueue_on_commit(mailing)
            created += len(pairs)
    # Nothing to send at all (empty audience): finish now.
    mailing_finish_if_done(mailing_id=mailing_id)
    return -created if inline else created
