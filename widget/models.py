"""Website inboxes (one per site a business embeds the widget on), their visitors and
the satisfaction ratings those visitors leave."""

from __future__ import annotations

import secrets
import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from chat.models import Client, HelpDesk
from core.models import Organization
from core.validators import validate_timezone


def new_inbox_token() -> str:
    # Public (it is in the page's HTML): it names the inbox, it grants nothing alone.
    return secrets.token_urlsafe(18)


def new_inbox_secret() -> str:
    # Private: only the business's server holds it, to sign its users' ids.
    return secrets.token_hex(32)


class WebInbox(models.Model):
    class Field(models.TextChoices):
        OFF = "off"
        OPTIONAL = "optional"
        REQUIRED = "required"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="web_inboxes"
    )
    name = models.CharField(max_length=200)
    token = models.CharField(max_length=40, unique=True, default=new_inbox_token)
    secret = models.CharField(max_length=64, default=new_inbox_secret)
    # Exact origins (scheme://host[:port]) whose pages may embed the widget.
    allowed_origins = models.JSONField(default=list, blank=True)
    greeting = models.CharField(max_length=500, blank=True, default="")
    away_message = models.CharField(max_length=500, blank=True, default="")
    # The Organization has no time zone of its own, so the inbox carries the one its
    # business hours are read in.
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    # [{"weekday": 0-6 (Monday 0), "start": "09:00", "end": "18:00"}, ...]; empty: always.
    business_hours = models.JSONField(default=list, blank=True)
    prechat_name = models.CharField(max_length=10, choices=Field.choices, default=Field.OFF)
    prechat_email = models.CharField(max_length=10, choices=Field.choices, default=Field.OFF)
    prechat_phone = models.CharField(max_length=10, choices=Field.choices, default=Field.OFF)
    language = models.CharField(max_length=10, blank=True, default="en")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization_id", "name", "id"]

    def __str__(self) -> str:
        return self.name


class Visitor(models.Model):
    """Someone who opened the widget: a web `chat.Client` plus what the widget knows."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    inbox = models.ForeignKey(WebInbox, on_delete=models.CASCADE, related_name="visitors")
    client = models.OneToOneField(Client, on_delete=models.CASCADE, related_name="visitor")
    # Set only for a verified identity (user_hash checked): unique per inbox.
    user_id = models.CharField(max_length=200, blank=True, default="")
    # The phone the visitor gave when another client of the organization already has it
    # (chat.visitors.client_create_visitor leaves it off the contact): shown to agents.
    phone = models.CharField(max_length=20, blank=True, default="")
    # The latest page context, shown to agents beside the conversation.
    page_url = models.CharField(max_length=2000, blank=True, default="")
    user_agent = models.CharField(max_length=500, blank=True, default="")
    # Minutes east of UTC of the visitor's browser (JavaScript's -getTimezoneOffset()).
    utc_offset = models.SmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["inbox", "user_id"],
                condition=~models.Q(user_id=""),
                name="uniq_visitor_user_id",
            )
        ]

    def __str__(self) -> str:
        return f"visitor {self.uuid}"


class Rating(models.Model):
    """One satisfaction rating per resolved conversation."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    inbox = models.ForeignKey(WebInbox, on_delete=models.CASCADE, related_name="ratings")
    help_desk = models.OneToOneField(HelpDesk, on_delete=models.CASCADE, related_name="rating")
    score = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    comment = models.TextField(blank=True, default="", max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return f"rating {self.score} for help desk {self.help_desk_id}"
