"""Mailing: templates, mailings (campaigns and notifications) and their messages.

A mailing's message for one client is a `MailingMessage` whose primary key *is*
its `core.Delivery` (so message id == delivery id == the sender's msgId). The
status lives once, on the delivery; statistics are queries over those rows.
`UniqueConstraint(mailing, client)` makes a second msgId for one (mailing, client)
impossible, whatever the workers do.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from core.models import Delivery, Organization


class Template(models.Model):
    class Transport(models.TextChoices):
        # The only transport the external sender offers; kept as a field so a
        # template that names another one is refused, not silently sent as SMS.
        SMS = "sms"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="mailing_templates"
    )
    title = models.CharField(max_length=200)
    code = models.SlugField(max_length=50)
    body = models.TextField()
    transport = models.CharField(max_length=10, choices=Transport.choices, default="sms")
    # Names the body may use besides the client's fields; a mailing must give them.
    variables = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "code"], name="uniq_template_code")
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.code})"


class Mailing(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled"
        RUNNING = "running"
        FINISHED = "finished"
        CANCELLED = "cancelled"

    class Kind(models.TextChoices):
        CAMPAIGN = "campaign"
        NOTIFICATION = "notification"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="mailings"
    )
    name = models.CharField(max_length=200, blank=True, default="")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.CAMPAIGN)
    start_at = models.DateTimeField(db_index=True)
    end_at = models.DateTimeField()
    text = models.TextField(blank=True, default="")
    template = models.ForeignKey(
        Template, null=True, blank=True, on_delete=models.PROTECT, related_name="mailings"
    )
    context = models.JSONField(default=dict, blank=True)
    # Client filter: AND across the two lists, OR within each; empty = no condition.
    operator_codes = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    # Explicit recipients (notifications), merged with the tag/operator selection.
    client_ids = models.JSONField(default=list, blank=True)
    priority = models.PositiveSmallIntegerField(default=5)
    promo = models.BooleanField(default=False)
    # Optional daily window in each client's own time zone; overnight if start > end.
    window_start = models.TimeField(null=True, blank=True)
    window_end = models.TimeField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.SCHEDULED, db_index=True
    )
    started_at = models.DateTimeField(null=True, blank=True)
    # Set when every recipient has its message row (the audience is frozen).
    materialized_at = models.DateTimeField(null=True, blank=True)
    # Last client pk given a message: materialization resumes after it.
    audience_cursor = models.BigIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status", "start_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end_at__gt=models.F("start_at")), name="mailing_end_after_start"
            )
        ]

    def __str__(self) -> str:
        return f"mailing {self.pk} {self.name!r} ({self.status})"


class MailingMessage(models.Model):
    """The seed's "message": one mailing to one client. Its id is the delivery's id."""

    delivery = models.OneToOneField(
        Delivery, primary_key=True, on_delete=models.CASCADE, related_name="mailing_message"
    )
    mailing = models.ForeignKey(Mailing, on_delete=models.CASCADE, related_name="messages")
    # SET_NULL keeps the statistics of a mailing when a client is deleted.
    client = models.ForeignKey(
        "chat.Client", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailing", "client"], name="uniq_mailing_client")
        ]

    def __str__(self) -> str:
        return f"message {self.pk} of mailing {self.mailing_id}"
