"""Assistance (issue #4): a bot asks for a human on a topic; the webhook telling its team."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from chat.models.conversations import Client, HelpDesk, TimeStamped
from core.models import Organization, OutboxAttempt, OutboxItem, slug_validator


class AssistanceTopic(TimeStamped):
    """A topic a bot may ask for (`sales`), routed to a team. Configured, never
    created from a request's input."""

    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="assistance_topics",
        verbose_name=_("organization"),
    )
    name = models.CharField(max_length=49, validators=[slug_validator], verbose_name=_("name"))
    team = models.ForeignKey(
        "core.Team",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="topics",
        verbose_name=_("team"),
    )
    # Outbound webhook for subscribers outside the product (optional).
    webhook_url = models.URLField(
        blank=True, default="", max_length=500, verbose_name=_("webhook URL")
    )
    webhook_secret = models.CharField(
        blank=True, default="", max_length=200, verbose_name=_("webhook secret")
    )
    # Round-robin pointer: how many requests this topic has assigned so far.
    # Read and advanced under the topic's row lock.
    rr_next = models.PositiveIntegerField(default=0, verbose_name=_("round-robin position"))

    class Meta:
        verbose_name = _("assistance topic")
        verbose_name_plural = _("assistance topics")
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="uniq_assistance_topic")
        ]

    def __str__(self) -> str:
        return self.name


class AssistanceRequest(TimeStamped):
    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")  # stored, routing job pending
        ROUTED = "routed", _("Routed")  # assigned (or no one available) and announced
        ACCEPTED = "accepted", _("Accepted")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name=_("UUID"))
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="assistance_requests",
        verbose_name=_("organization"),
    )
    topic = models.ForeignKey(
        AssistanceTopic, on_delete=models.PROTECT, related_name="requests", verbose_name=_("topic")
    )
    description = models.TextField(blank=True, default="", verbose_name=_("description"))
    client = models.ForeignKey(
        Client,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("client"),
    )
    help_desk = models.ForeignKey(
        HelpDesk,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("help desk"),
    )
    status = models.CharField(
        max_length=10,
        choices=Status.choices,
        default=Status.RECEIVED,
        db_index=True,
        verbose_name=_("status"),
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("assignee"),
    )
    routed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("routed at"))
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("accepted by"),
    )
    accepted_at = models.DateTimeField(null=True, blank=True, verbose_name=_("accepted at"))

    class Meta:
        verbose_name = _("assistance request")
        verbose_name_plural = _("assistance requests")
        indexes = [models.Index(fields=["organization", "-id"])]

    def __str__(self) -> str:
        return f"assistance {self.uuid} ({self.status})"


class AssistanceWebhook(OutboxItem):
    """One event sent to a topic's webhook URL; the body is fixed when created.
    An outbox item (core.outbox): claimed with a token, one attempt row per try."""

    request = models.ForeignKey(
        AssistanceRequest,
        on_delete=models.CASCADE,
        related_name="webhooks",
        verbose_name=_("request"),
    )
    event_type = models.CharField(max_length=30, verbose_name=_("event type"))
    url = models.URLField(max_length=500, verbose_name=_("URL"))
    body = models.TextField(verbose_name=_("body"))

    class Meta:
        verbose_name = _("assistance webhook")
        verbose_name_plural = _("assistance webhooks")

    def __str__(self) -> str:
        return f"webhook {self.pk} {self.event_type} ({self.status})"


class AssistanceWebhookAttempt(OutboxAttempt):
    webhook = models.ForeignKey(
        AssistanceWebhook,
        on_delete=models.CASCADE,
        related_name="attempt_rows",
        verbose_name=_("webhook"),
    )

    class Meta:
        verbose_name = _("assistance webhook attempt")
        verbose_name_plural = _("assistance webhook attempts")
        ordering = ["webhook_id", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of webhook {self.webhook_id}"
