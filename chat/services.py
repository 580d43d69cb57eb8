"""Chat writes. Every change publishes its event after commit, from here."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext

from chat.clients import client_create
from chat.files import display_name, file_link_url, files_delete_on_commit, message_files
from chat.models import Client, HelpDesk, Message
from chat.publish import (
    help_desk_publish,
    help_desk_publish_deleted,
    message_and_desk_publish,
    message_publish,
)
from core.errors import ApplicationError
from core.jobs import QUEUE_CHAT, enqueue_on_commit
from core.logging import get_logger
from core.models import Delivery, Organization
from core.outbox import delivery_claim, delivery_record, new_claim_token
from core.sender import send_sync

log = get_logger(__name__)

# Forward-only status machine: a late or repeated receipt is ignored.
_NEXT: dict[str, frozenset[str]] = {
    Message.Status.SENDING: frozenset({"sent", "delivered", "read", "failed"}),
    Message.Status.SENT: frozenset({"delivered", "read", "failed"}),
    Message.Status.DELIVERED: frozenset({"read"}),
    Message.Status.READ: frozenset(),
    Message.Status.FAILED: frozenset(),
}


# --- help desks -----------------------------------------------------------------------


# No savepoint when nested (every new message calls it inside its own transaction): it
# rolls back only with its caller, which never goes on after it raised.
@transaction.atomic(savepoint=False)
def help_desk_open(*, client: Client) -> tuple[HelpDesk, bool]:
    """The client's open help desk, or a new one. Returns (help desk, created)."""
    # Pending and snoozed desks are still the client's conversation: only a resolved one
    # makes the next message start a new desk.
    # With what the desk's event nests (its assignee, its organization), so that a new
    # message's help_desk_touch(locked=True) need not read the row back.
    open_desks = (
        HelpDesk.objects.select_for_update(of=("self",))
        .select_related("assignee", "organization")
        .exclude(status=HelpDesk.Status.RESOLVED)
        .filter(client=client)
        .order_by("-last_activity_at")
    )
    existing = open_desks.first()  # the common case: one query, the desk's row locked
    if existing is not None:
        existing.client = client
        return existing, False
    # None open: lock the client before opening one (locking an absent desk does not stop
    # two concurrent callers from each opening one), then look again, since a caller
    # holding that lock may have opened it meanwhile (read committed: the second query
    # sees its commit).
    Client.objects.select_for_update().filter(pk=client.pk).exists()
    existing = open_desks.first()
    if existing is not None:
        existing.client = client
        return existing, False
    help_desk = HelpDesk.objects.create(organization_id=client.organization_id, client=client)
    help_desk.client = client
    log.info("help_desk_opened", help_desk_id=help_desk.pk, client_id=client.pk)
    help_desk_publish(help_desk)
    return help_desk, True


@transaction.atomic
def help_desk_update(*, help_desk: HelpDesk, data: dict[str, Any]) -> HelpDesk:
    if "status" in data:
        help_desk.status = data["status"]
    if "assignee" in data:
        username = data["assignee"]
        if username is None:
            help_desk.assignee = None
        else:
            user = (
                get_user_model()
                .objects.filter(
                    username=username, memberships__organization_id=help_desk.organization_id
                )
                .first()
            )
            if user is None:
                raise ApplicationError(
                    gettext("Unknown agent."),
                    fields={"assignee": [gettext("Not an agent of this organization.")]},
                )
            help_desk.assignee = user
    help_desk.save()
    log.info("help_desk_updated", help_desk_id=help_desk.pk, fields=sorted(data))
    help_desk_publish(help_desk)
    return help_desk


@transaction.atomic
def help_desk_delete(*, help_desk: HelpDesk) -> None:
    log.info("help_desk_deleted", help_desk_id=help_desk.pk, client_id=help_desk.client_id)
    help_desk_publish_deleted(help_desk)
    files_delete_on_commit(message_files(Message.objects.filter(help_desk=help_desk)))
    help_desk.delete()


@transaction.atomic
def message_delete(*, message: Message) -> None:
    """Moderation (the admin): the message and its file go (the file after commit); the
    help desk's `last_message` falls back to the one before, and agents get the desk."""
    help_desk = HelpDesk.objects.select_for_update().get(pk=message.help_desk_id)
    log.info("message_deleted", message_id=message.pk, help_desk_id=help_desk.pk)
    files_delete_on_commit(message_files(Message.objects.filter(pk=message.pk)))
    message.delete()
    help_desk.last_message = help_desk.messages.order_by("-created_at", "-pk").first()
    help_desk.save(update_fields=["last_message", "updated_at"])
    help_desk_publish(help_desk)


# A help desk's relations that no update changes (see help_desk_touch).
_STABLE_RELATIONS = (HelpDesk._meta.get_field("client"), HelpDesk._meta.get_field("organization"))


def help_desk_touch(
    *,
    help_desk: HelpDesk,
    message: Message,
    unread: bool,
    assignee: Any = None,
    locked: bool = False,
) -> None:
    """The desk's bookkeeping for a new message, for every channel (SMS here, the
    widget's visitors in chat/visitors.py). Call inside the message's transaction.
    `unread`: the client wrote (the desk reopens, snoozed or pending or not);
    `assignee`: an agent replied on an unassigned desk and takes it (self-assign);
    `locked`: `help_desk` was read in this transaction under its row lock
    (help_desk_open), so its values are current and the update is applied to it
    instead of read back (one query less on every inbound message)."""
    now = timezone.now()
    changes: dict[str, Any] = {}
    if unread:
        changes.update(
            # Each agent's unread count is measured from this (chat/reads.py).
            received_count=F("received_count") + 1,
            status=HelpDesk.Status.OPEN,
            snoozed_until=None,
        )
    elif help_desk.status == HelpDesk.Status.RESOLVED:
        changes["status"] = HelpDesk.Status.OPEN  # an agent writing reopens a resolved desk
    if assignee is not None and help_desk.assignee_id is None:
        changes["assignee"] = assignee
    HelpDesk.objects.filter(pk=help_desk.pk).update(
        last_message=message, last_activity_at=now, updated_at=now, **changes
    )
    if locked:
        if unread:
            changes["received_count"] = help_desk.received_count + 1
        for name, value in changes.items():
            setattr(help_desk, name, value)
        help_desk.last_message, help_desk.last_activity_at = message, now
        help_desk.updated_at = now
        return
    # One query for the row and what its event nests that may have changed (a bare
    # refresh drops them, and serializing it then loaded each again, inside the write
    # transaction). A desk's client and organization never change: kept when loaded,
    # joined only when not (the representation takes the client's organization from
    # the desk's).
    kept = {f: f.get_cached_value(help_desk) for f in _STABLE_RELATIONS if f.is_cached(help_desk)}
    joins = ["assignee", *(f.name for f in _STABLE_RELATIONS if f not in kept)]
    help_desk.refresh_from_db(from_queryset=HelpDesk.objects.select_related(*joins))
    for field, value in kept.items():
        field.set_cached_value(help_desk, value)
    help_desk.last_message = message


# --- messages -------------------------------------------------------------------------


def _self_assignee(sender: Any) -> Any:
    # Self-assign on reply: a person (not an integration key acting for its organization).
    return sender if getattr(sender, "is_authenticated", False) and sender.pk else None


def _file_note(message: Message) -> str:
    # The external sender carries text only: a file travels as a link, signed and
    # expiring, since the client has no session (chat/files.py).
    return f"\n{file_link_url(message)}" if message.file else ""


@transaction.atomic(savepoint=False)
def message_create(
    *,
    help_desk: HelpDesk,
    text: str,
    sender: Any,
    file: UploadedFile | None = None,
    locked: bool = False,
) -> Message:
    """An agent's message to the client: stored `sending`, then handed to the sender.
    `locked`: the caller read `help_desk` in its transaction under its row lock, with its
    assignee and organization (help_desk_get_for_principal(lock=True, nested=False)): the
    desk's update is applied to it instead of read back."""
    client = help_desk.client
    message = Message(help_desk=help_desk, message=text, type=Message.Type.SENT, sender=sender)
    if file is not None:
        message.file = file  # stored under a random name (chat.models.message_file_path)
        message.file_name = display_name(file.name or "")
    # A website visitor has no SMS sender (and maybe no phone): the reply reaches them on
    # the widget's socket through the new_message event (widget/), so no Delivery, no job.
    web = client.channel == Client.Channel.WEB
    if web:
        message.status = Message.Status.SENT
    else:
        # The delivery first, so the message is written once with it (its file link
        # needs only the message's uuid, set when it was built).
        message.delivery = Delivery.objects.create(
            organization_id=help_desk.organization_id,
            source=Delivery.Source.CHAT,
            phone=int(client.phone),
            text=(text + _file_note(message)).strip(),
        )
    message.save()
    help_desk_touch(
        help_desk=help_desk,
        message=message,
        unread=False,
        assignee=_self_assignee(sender),
        locked=locked,
    )
    log.info(
        "message_created",
        message_id=message.pk,
        help_desk_id=help_desk.pk,
        client_id=client.pk,
        delivery_id=message.delivery_id,
    )
    message_and_desk_publish("new_message", message, help_desk)
    if not web:
        from chat.jobs import message_deliver

        enqueue_on_commit(message_deliver, message.pk, queue=QUEUE_CHAT)
    return message


@transaction.atomic
def message_receive(
    *, organization: Organization, phone: str, text: str, name: str = ""
) -> Message:
    """A client's inbound message: finds or creates the client and its open help desk."""
    client = Client.objects.filter(organization=organization, phone=phone).first()
    if client is None:
        try:
            client = client_create(organization=organization, name=name or phone, phone=phone)
        except ApplicationError:
            # A concurrent inbound message from the same new phone created it first
            # (its unique phone made us wait for its commit): use that client.
            client = Client.objects.get(organization=organization, phone=phone)
    help_desk, _ = help_desk_open(client=client)
    message = Message.objects.create(
        help_desk=help_desk,
        message=text,
        type=Message.Type.RECEIVED,
        status=Message.Status.DELIVERED,
    )
    help_desk_touch(help_desk=help_desk, message=message, unread=True, locked=True)
    log.info(
        "message_received", message_id=message.pk, help_desk_id=help_desk.pk, client_id=client.pk
    )
    message_and_desk_publish("new_message", message, help_desk)
    return message


@transaction.atomic
def message_status_apply(*, message: Message, status: str, reason: str = "") -> bool:
    """Move a message forward to `status`. Returns False (and changes nothing) otherwise."""
    # What its events serialize comes with the row (the sender may be null: an outer join,
    # so only the message row is locked).
    locked = (
        Message.objects.select_for_update(of=("self",))
        .select_related("help_desk__client", "sender")
        .get(pk=message.pk)
    )
    if status not in _NEXT[locked.status]:
        log.info(
            "message_status_ignored", message_id=locked.pk, current=locked.status, requested=status
        )
        message.status = locked.status
        return False
    locked.status = status
    locked.save(update_fields=["status", "updated_at"])
    message.status, message.updated_at = locked.status, locked.updated_at
    log.info("message_status", message_id=locked.pk, status=status, reason=reason or None)
    help_desk = locked.help_desk
    if help_desk.last_message_id == locked.pk:
        # The help desk shows this message nested as `last_message`: keep it current.
        help_desk.last_message = locked
        message_and_desk_publish("update_message", locked, help_desk)
    else:
        message_publish("update_message", locked)
    return True


def message_deliver(*, message_id: int) -> None:
    """Job body: one attempt to hand the message to the sender, then record it.

    Idempotent: the claim is a conditional UPDATE, so a second run (duplicate job,
    sweeper) finds nothing to do. No transaction is open during the HTTP call.
    """
    message = Message.objects.select_related("delivery", "help_desk").filter(pk=message_id).first()
    if message is None or message.delivery is None:
        log.info("message_deliver_skipped", message_id=message_id, reason="gone")
        return
    token = new_claim_token()
    delivery = delivery_claim(delivery_id=message.delivery.pk, token=token)
    if delivery is None:
        ended = (
            Delivery.objects.filter(
                pk=message.delivery.pk,
                status__in=(Delivery.Status.FAILED, Delivery.Status.EXPIRED),
            )
            .values_list("last_error", flat=True)
            .first()
        )
        if ended is not None and message.status == Message.Status.SENDING:
            # Ended by the sweeper (a lost answer not retried): the message follows.
            with transaction.atomic():
                message_status_apply(message=message, status=Message.Status.FAILED, reason=ended)
            return
        log.info("message_deliver_skipped", message_id=message_id, reason="not due or taken")
        return
    result = send_sync(msg_id=delivery.pk, phone=delivery.phone, text=delivery.text)
    with transaction.atomic():
        recorded = delivery_record(delivery=delivery, token=token, result=result)
        if not recorded.applied:
            return
        if recorded.status == Delivery.Status.SENT:
            message_status_apply(message=message, status=Message.Status.SENT)
        elif recorded.status in (Delivery.Status.FAILED, Delivery.Status.EXPIRED):
            message_status_apply(message=message, status=Message.Status.FAILED, reason=result.error)
        elif recorded.retry_at is not None:
            from chat.jobs import message_deliver as job

            log.info(
                "message_retry_scheduled",
                message_id=message.pk,
                delivery_id=delivery.pk,
                retry_at=recorded.retry_at.isoformat(),
            )
            enqueue_on_commit(job, message.pk, queue=QUEUE_CHAT, at=recorded.retry_at)


@transaction.atomic
def message_retry(*, message: Message) -> Message:
    """Send a failed message again, as a new retry chain (new msgId)."""
    locked = (
        Message.objects.select_for_update(of=("self",))
        .select_related("help_desk__client", "sender")
        .get(pk=message.pk)
    )
    if locked.type != Message.Type.SENT or locked.status != Message.Status.FAILED:
        raise ApplicationError(
            gettext("Only a failed outgoing message can be retried."),
            code="not_retryable",
            status_code=409,
        )
    in_flight = (
        locked.delivery_id is not None
        and Delivery.objects.filter(pk=locked.delivery_id, status=Delivery.Status.SENDING).exists()
    )
    if in_flight:
        # A `failed` receipt arrived while our own call to the sender is under way: a new
        # chain now could hand the client the same message twice. Wait for it to end.
        # (A chain still `pending` was never handed over: the new one replaces it, and
        # the sweeper closes it, since no message points to it any more.)
        raise ApplicationError(
            gettext("The message is still being delivered; retry once that attempt has ended."),
            code="delivery_in_progress",
            status_code=409,
        )
    locked.delivery = Delivery.objects.create(
        organization_id=locked.help_desk.organization_id,
        source=Delivery.Source.CHAT,
        phone=int(locked.help_desk.client.phone),
        text=(locked.message + _file_note(locked)).strip(),
    )
    # The only backward move, and only on an explicit request: a new chain.
    locked.status = Message.Status.SENDING
    locked.save(update_fields=["delivery", "status", "updated_at"])
    log.info("message_retry", message_id=locked.pk, delivery_id=locked.delivery_id)
    message_publish("update_message", locked)
    from chat.jobs import message_deliver

    enqueue_on_commit(message_deliver, locked.pk, queue=QUEUE_CHAT)
    return locked


def chat_deliveries_close_orphans() -> int:
    """Fail pending chat deliveries that no message points to any more.

    A help desk or client deleted before its message went out, or a retry that
    started a new chain, leaves the old Delivery `pending` with nothing to send it.
    Left alone, the sweeper would find it on every run, and enough of them fill
    its batch so that real overdue messages are never re-enqueued.
    """
    now = timezone.now()
    closed = Delivery.objects.filter(
        source=Delivery.Source.CHAT, status=Delivery.Status.PENDING, chat_message__isnull=True
    ).update(
        status=Delivery.Status.FAILED,
        last_error="message deleted or superseded",
        next_attempt_at=None,
        updated_at=now,
    )
    if closed:
        log.warning("chat_deliveries_orphaned", count=closed)
    return closed
