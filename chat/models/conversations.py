"""Chat: clients, help desks (conversations), their notes, reads and canned replies, messages."""

from __future__ import annotations

import os
import re
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.models import Delivery, Organization, slug_validator
from core.validators import (
    operator_code_validator,
    phone_validator,
    tag_validator,
    validate_operator_code_matches,
    validate_timezone,
)


class TimeStamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        abstract = True


class Client(TimeStamped):
    class Channel(models.TextChoices):
        SMS = "sms", _("SMS")  # created by the API or admin; reached through the SMS-like sender
        WEB = "web", _("Web")  # a website widget visitor (issue 14)
        EMAIL = "email", _("Email")  # known only by an email address (issue 15)

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name=_("UUID"))
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="clients",
        verbose_name=_("organization"),
    )
    name = models.CharField(max_length=200, verbose_name=_("name"))
    # Blank only for contacts that have no phone (a widget visitor, an email-only
    # contact); the API still requires it for the clients it creates.
    phone = models.CharField(
        max_length=11, blank=True, default="", validators=[phone_validator], verbose_name=_("phone")
    )
    operator_code = models.CharField(
        max_length=3,
        blank=True,
        default="",
        validators=[operator_code_validator],
        verbose_name=_("operator code"),
    )
    channel = models.CharField(
        max_length=10, choices=Channel.choices, default=Channel.SMS, verbose_name=_("channel")
    )
    email = models.EmailField(max_length=254, blank=True, default="", verbose_name=_("email"))
    # Per-channel opt-outs: promo_opt_out is the SMS one (the seed's field).
    email_promo_opt_out = models.BooleanField(default=False, verbose_name=_("email promo opt-out"))
    # Set by a bounce or complaint: the address is skipped and counted.
    email_undeliverable = models.BooleanField(default=False, verbose_name=_("email undeliverable"))
    # What the client receives is rendered in this language (blank: the template's default).
    language = models.CharField(max_length=10, blank=True, default="", verbose_name=_("language"))
    tag = models.CharField(
        max_length=50, blank=True, default="", validators=[tag_validator], verbose_name=_("tag")
    )
    timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_timezone], verbose_name=_("time zone")
    )
    promo_opt_out = models.BooleanField(default=False, verbose_name=_("promo opt-out"))

    class Meta:
        verbose_name = _("client")
        verbose_name_plural = _("clients")
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "phone"],
                condition=~models.Q(phone=""),
                name="uniq_client_phone",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "email"]),
            models.Index(fields=["organization", "operator_code"]),
            models.Index(fields=["organization", "tag"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.phone})"

    def clean(self) -> None:
        # Here, not only in the API serializer: the admin and the services save through
        # full_clean too, so a mismatched operator code cannot enter any other way.
        validate_operator_code_matches(self.phone or "", self.operator_code or "")
        if self.channel == self.Channel.SMS and not self.phone:
            raise ValidationError({"phone": [gettext("A client reached by SMS needs a phone.")]})


class HelpDesk(TimeStamped):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        PENDING = "pending", _("Pending")  # waiting on the client
        SNOOZED = (
            "snoozed",
            _("Snoozed"),
        )  # out of sight until `snoozed_until` (or the client writes)
        RESOLVED = (
            "resolved",
            _("Resolved"),
        )  # the seed's `closed` (migrated; the API still accepts it)

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name=_("UUID"))
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="help_desks",
        verbose_name=_("organization"),
    )
    client = models.ForeignKey(
        Client, on_delete=models.CASCADE, related_name="help_desks", verbose_name=_("client")
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.OPEN, verbose_name=_("status")
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("assignee"),
    )
    team = models.ForeignKey(
        "core.Team",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("team"),
    )
    # Set only while status is snoozed; the unsnooze sweep reopens the desk at that time.
    snoozed_until = models.DateTimeField(
        null=True, blank=True, db_index=True, verbose_name=_("snoozed until")
    )
    # Denormalized so the inbox (newest activity first) is one indexed query.
    last_message = models.ForeignKey(
        "Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("last message"),
    )
    last_activity_at = models.DateTimeField(
        auto_now_add=True, db_index=True, verbose_name=_("last activity at")
    )
    # How many messages the client has sent in this desk. Each agent's unread count is
    # this minus the `HelpDeskRead.read_count` they last acknowledged: one indexed row
    # per (desk, agent) instead of counting messages for every row of the inbox.
    received_count = models.PositiveIntegerField(default=0, verbose_name=_("received count"))

    class Meta:
        verbose_name = _("help desk")
        verbose_name_plural = _("help desks")
        indexes = [
            models.Index(fields=["organization", "-last_activity_at"]),
            models.Index(fields=["organization", "status", "assignee"]),
        ]

    def __str__(self) -> str:
        return f"help desk {self.uuid} ({self.client})"


class HelpDeskRead(models.Model):
    """How far one agent has read one help desk (per-agent unread counts)."""

    help_desk = models.ForeignKey(
        HelpDesk, on_delete=models.CASCADE, related_name="reads", verbose_name=_("help desk")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("user")
    )
    # The desk's received_count when this agent last marked it read.
    read_count = models.PositiveIntegerField(default=0, verbose_name=_("read count"))
    read_at = models.DateTimeField(auto_now=True, verbose_name=_("read at"))

    class Meta:
        verbose_name = _("help desk read")
        verbose_name_plural = _("help desk reads")
        constraints = [
            models.UniqueConstraint(fields=["help_desk", "user"], name="uniq_help_desk_read")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.read_count} of help desk {self.help_desk_id}"


class HelpDeskNote(models.Model):
    """A private note in a conversation: agents only, never sent to or shown to the client."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name=_("UUID"))
    help_desk = models.ForeignKey(
        HelpDesk, on_delete=models.CASCADE, related_name="notes", verbose_name=_("help desk")
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("author"),
    )
    text = models.TextField(verbose_name=_("text"))
    # User ids of the organization members `@username` named when the note was written.
    mentions = models.JSONField(default=list, blank=True, verbose_name=_("mentions"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("help desk note")
        verbose_name_plural = _("help desk notes")
        indexes = [models.Index(fields=["help_desk", "-created_at"])]

    def __str__(self) -> str:
        return f"note {self.uuid} on help desk {self.help_desk_id}"


class CannedReply(TimeStamped):
    """A saved answer an agent inserts with `/shortcut`; `{{ name }}`-style variables are
    filled by the console from the desk's client, as plain text."""

    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="canned_replies",
        verbose_name=_("organization"),
    )
    shortcut = models.CharField(
        max_length=49, validators=[slug_validator], verbose_name=_("shortcut")
    )
    title = models.CharField(max_length=200, verbose_name=_("title"))
    text = models.TextField(max_length=4000, verbose_name=_("text"))

    class Meta:
        verbose_name = _("canned reply")
        verbose_name_plural = _("canned replies")
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "shortcut"], name="uniq_canned_shortcut"
            )
        ]

    def __str__(self) -> str:
        return f"/{self.shortcut}"


_SAFE_EXTENSION = re.compile(r"\.[a-z0-9]{1,10}")


def message_file_path(instance: Message, filename: str) -> str:
    """Where an upload is stored: `messages/<organization id>/<random hex><extension>`.

    Random, so a name cannot be guessed or enumerated; the name the agent gave is kept
    in `Message.file_name` (shown, and sent in Content-Disposition), never used on disk.
    The extension is kept only when it is plain ASCII: it is all the storage needs to
    tell types apart, and the sweeper and an operator see what a file is.
    """
    extension = os.path.splitext(filename)[1].lower()
    if not _SAFE_EXTENSION.fullmatch(extension):
        extension = ""
    return f"messages/{instance.help_desk.organization_id}/{uuid.uuid4().hex}{extension}"


class Message(TimeStamped):
    class Type(models.TextChoices):
        SENT = "sent", _("Outgoing")  # from an agent to the client
        RECEIVED = "received", _("Incoming")  # from the client

    class Status(models.TextChoices):
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        READ = "read", _("Read")
        FAILED = "failed", _("Failed")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name=_("UUID"))
    help_desk = models.ForeignKey(
        HelpDesk, on_delete=models.CASCADE, related_name="messages", verbose_name=_("help desk")
    )
    message = models.TextField(blank=True, default="", verbose_name=_("message"))
    # Served only through chat/files.py (an authorized view or a signed link), never
    # from a public /media/ route.
    file = models.FileField(
        upload_to=message_file_path, null=True, blank=True, max_length=300, verbose_name=_("file")
    )
    # The uploaded file's own name, for display and Content-Disposition only.
    file_name = models.CharField(
        max_length=255, blank=True, default="", verbose_name=_("file name")
    )
    type = models.CharField(max_length=10, choices=Type.choices, verbose_name=_("type"))
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.SENDING, verbose_name=_("status")
    )
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("sender"),
    )
    delivery = models.OneToOneField(
        Delivery,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="chat_message",
        verbose_name=_("delivery"),
    )

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        indexes = [models.Index(fields=["help_desk", "-created_at"])]

    def __str__(self) -> str:
        return f"message {self.uuid} ({self.type}, {self.status})"
