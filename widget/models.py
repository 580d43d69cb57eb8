"""Website inboxes (one per site a business embeds the widget on), their visitors and
the satisfaction ratings those visitors leave."""

from __future__ import annotations

import secrets
import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

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
        OFF = "off", _("Do not ask")
        OPTIONAL = "optional", _("Optional")
        REQUIRED = "required", _("Required")

    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="web_inboxes",
        verbose_name=_("organization"),
    )
    name = models.CharField(max_length=200, verbose_name=_("name"))
    token = models.CharField(
        max_length=40, unique=True, default=new_inbox_token, verbose_name=_("token")
    )
    secret = models.CharField(max_length=64, default=new_inbox_secret, verbose_name=_("secret"))
    # Exact origins (scheme://host[:port]) whose pages may embed the widget.
    allowed_origins = models.JSONField(default=list, blank=True, verbose_name=_("allowed origins"))
    greeting = models.CharField(max_length=500, blank=True, default="", verbose_name=_("greeting"))
    away_message = models.CharField(
        max_length=500, blank=True, default="", verbose_name=_("away message")
    )
    # The Organization has no time zone of its own, so the inbox carries the one its
    # business hours are read in.
    timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_timezone], verbose_name=_("time zone")
    )
    # [{"weekday": 0-6 (Monday 0), "start": "09:00", "end": "18:00"}, ...]; empty: always.
    business_hours = models.JSONField(default=list, blank=True, verbose_name=_("business hours"))
    prechat_name = models.CharField(
        max_length=10, choices=Field.choices, default=Field.OFF, verbose_name=_("pre-chat name")
    )
    prechat_email = models.CharField(
        max_length=10, choices=Field.choices, default=Field.OFF, verbose_name=_("pre-chat email")
    )
    prechat_phone = models.CharField(
        max_length=10, choices=Field.choices, default=Field.OFF, verbose_name=_("pre-chat phone")
    )
    language = models.CharField(max_length=10, blank=True, default="en", verbose_name=_("language"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("website inbox")
        verbose_name_plural = _("website inboxes")
        ordering = ["organization_id", "name", "id"]

    def __str__(self) -> str:
        return self.name


class Visitor(models.Model):
    """Someone who opened the widget: a web `chat.Client` plus what the widget knows."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name=_("UUID"))
    inbox = models.ForeignKey(
        WebInbox, on_delete=models.CASCADE, related_name="visitors", verbose_name=_("inbox")
    )
    client = models.OneToOneField(
        Client, on_delete=models.CASCADE, related_name="visitor", verbose_name=_("client")
    )
    # Set only for a verified identity (user_hash checked): unique per inbox.
    user_id = models.CharField(max_length=200, blank=True, default="", verbose_name=_("user ID"))
    # The phone the visitor gave when another client of the organization already has it
    # (chat.visitors.client_create_visitor leaves it off the contact): shown to agents.
    phone = models.CharField(max_length=20, blank=True, default="", verbose_name=_("phone"))
    # The latest page context, shown to agents beside the conversation.
    page_url = models.CharField(max_length=2000, blank=True, default="", verbose_name=_("page URL"))
    user_agent = models.CharField(
        max_length=500, blank=True, default="", verbose_name=_("user agent")
    )
    # Minutes east of UTC of the visitor's browser (JavaScript's -getTimezoneOffset()).
    utc_offset = models.SmallIntegerField(
        null=True, blank=True, verbose_name=_("UTC offset (minutes)")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    last_seen_at = models.DateTimeField(auto_now=True, verbose_name=_("last seen at"))

    class Meta:
        verbose_name = _("visitor")
        verbose_name_plural = _("visitors")
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

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", verbose_name=_("organization")
    )
    inbox = models.ForeignKey(
        WebInbox, on_delete=models.CASCADE, related_name="ratings", verbose_name=_("inbox")
    )
    help_desk = models.OneToOneField(
        HelpDesk, on_delete=models.CASCADE, related_name="rating", verbose_name=_("help desk")
    )
    score = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)], verbose_name=_("score")
    )
    comment = models.TextField(blank=True, default="", max_length=2000, verbose_name=_("comment"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("rating")
        verbose_name_plural = _("ratings")
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return f"rating {self.score} for help desk {self.help_desk_id}"
