"""Chat: clients, help desks (conversations) and messages."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from core.models import Delivery, Organization
from core.validators import (
    operator_code_validator,
    phone_validator,
    tag_validator,
    validate_timezone,
)


class TimeStamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Client(TimeStamped):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="clients")
    name = models.CharField(max_length=200)
    phone = models.CharField(max_length=11, validators=[phone_validator])
    operator_code = models.CharField(max_length=3, validators=[operator_code_validator])
    tag = models.CharField(max_length=50, blank=True, default="", validators=[tag_validator])
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    promo_opt_out = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "phone"], name="uniq_client_phone"),
        ]
        indexes = [
            models.Index(fields=["organization", "operator_code"]),
            models.Index(fields=["organization", "tag"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.phone})"


class HelpDesk(TimeStamped):
    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="help_desks"
    )
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="help_desks")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Denormalized so the inbox (newest activity first) is one indexed query.
    last_message = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_activity_at = models.DateTimeField(auto_now_add=True, db_index=True)
    unread_count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["organization", "-last_activity_at"])]

    def __str__(self) -> str:
        return f"help desk {self.uuid} ({self.client})"


class Message(TimeStamped):
    class Type(models.TextChoices):
        SENT = "sent"  # from an agent to the client
        RECEIVED = "received"  # from the client

    class Status(models.TextChoices):
        SENDING = "sending"
        SENT = "sent"
        DELIVERED = "delivered"
        READ = "read"
        FAILED = "failed"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    help_desk = models.ForeignKey(HelpDesk, on_delete=models.CASCADE, related_name="messages")
    message = models.TextField(blank=True, default="")
    file = models.FileField(upload_to="messages/%Y/%m/", null=True, blank=True, max_length=300)
    type = models.CharField(max_length=10, choices=Type.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SENDING)
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    delivery = models.OneToOneField(
        Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="chat_message"
    )

    class Meta:
        indexes = [models.Index(fields=["help_desk", "-created_at"])]

    def __str__(self) -> str:
        return f"message {self.uuid} ({self.type}, {self.status})"
