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
from django.utils.translation import gettext_lazy as _

from core.models import Delivery, Organization


class Transport(models.TextChoices):
    """How a message reaches a client: the external SMS sender, or email (Django's email
    backend, SMTP in production). Any other value is refused, never sent as SMS."""

    SMS = "sms", _("SMS")
    EMAIL = "email", _("Email")


class Template(models.Model):
    Transport = Transport

    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="mailing_templates",
        verbose_name=_("organization"),
    )
    title = models.CharField(max_length=200, verbose_name=_("title"))
    code = models.SlugField(max_length=50, verbose_name=_("code"))
    # the text body (the SMS, or the email's text/plain part)
    body = models.TextField(verbose_name=_("body"))
    transport = models.CharField(
        max_length=10, choices=Transport.choices, default="sms", verbose_name=_("transport")
    )
    # Email only: the subject (placeholders allowed) and an optional text/html part.
    # Placeholder values are HTML-escaped in it; the markup itself is the author's,
    # which is why only organization admins may write templates.
    subject = models.CharField(max_length=200, blank=True, default="", verbose_name=_("subject"))
    html_body = models.TextField(blank=True, default="", verbose_name=_("HTML body"))
    # Names the body may use besides the client's fields; a mailing must give them.
    variables = models.JSONField(default=list, blank=True, verbose_name=_("variables"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("template")
        verbose_name_plural = _("templates")
        constraints = [
            models.UniqueConstraint(fields=["organization", "code"], name="uniq_template_code")
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.code})"


class TemplateVariant(models.Model):
    """The template in one more language (issue 16): a client whose `language` is this one
    receives these texts; anyone else the template's own (its default). Same placeholders
    and checks as the template (mailing/services/variants.py)."""

    template = models.ForeignKey(
        Template, on_delete=models.CASCADE, related_name="variants", verbose_name=_("template")
    )
    # A code of settings.LANGUAGES ("ru", "pt-br"), normalized by the service.
    language = models.CharField(max_length=10, verbose_name=_("language"))
    body = models.TextField(verbose_name=_("body"))
    subject = models.CharField(max_length=200, blank=True, default="", verbose_name=_("subject"))
    html_body = models.TextField(blank=True, default="", verbose_name=_("HTML body"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("template variant")
        verbose_name_plural = _("template variants")
        ordering = ["language"]
        constraints = [
            models.UniqueConstraint(fields=["template", "language"], name="uniq_template_language")
        ]

    def __str__(self) -> str:
        return f"{self.template} [{self.language}]"


class Mailing(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        RUNNING = "running", _("Running")
        FINISHED = "finished", _("Finished")
        CANCELLED = "cancelled", _("Cancelled")

    class Kind(models.TextChoices):
        CAMPAIGN = "campaign", _("Campaign")
        NOTIFICATION = "notification", _("Notification")

    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="mailings",
        verbose_name=_("organization"),
    )
    name = models.CharField(max_length=200, blank=True, default="", verbose_name=_("name"))
    kind = models.CharField(
        max_length=12, choices=Kind.choices, default=Kind.CAMPAIGN, verbose_name=_("kind")
    )
    start_at = models.DateTimeField(db_index=True, verbose_name=_("start at"))
    end_at = models.DateTimeField(verbose_name=_("end at"))
    text = models.TextField(blank=True, default="", verbose_name=_("text"))
    template = models.ForeignKey(
        Template,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="mailings",
        verbose_name=_("template"),
    )
    context = models.JSONField(default=dict, blank=True, verbose_name=_("context"))
    # Client filter: AND across the two lists, OR within each; empty = no condition.
    operator_codes = models.JSONField(default=list, blank=True, verbose_name=_("operator codes"))
    tags = models.JSONField(default=list, blank=True, verbose_name=_("tags"))
    # Explicit recipients (notifications), merged with the tag/operator selection.
    client_ids = models.JSONField(default=list, blank=True, verbose_name=_("client IDs"))
    priority = models.PositiveSmallIntegerField(default=5, verbose_name=_("priority"))
    promo = models.BooleanField(default=False, verbose_name=_("promo"))
    # Transports in order of preference (["email", "sms"]: email, else SMS); empty:
    # the template's transport, or SMS for a plain text.
    transports = models.JSONField(default=list, blank=True, verbose_name=_("transports"))
    # The event that produced this notification (an event rule's action), if any.
    event = models.ForeignKey(
        "mailing.Event",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="mailings",
        verbose_name=_("event"),
    )
    rule = models.ForeignKey(
        "mailing.EventRule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="mailings",
        verbose_name=_("rule"),
    )
    # Optional daily window in each client's own time zone; overnight if start > end.
    window_start = models.TimeField(null=True, blank=True, verbose_name=_("window start"))
    window_end = models.TimeField(null=True, blank=True, verbose_name=_("window end"))
    status = models.CharField(
        max_length=10,
        choices=Status.choices,
        default=Status.SCHEDULED,
        db_index=True,
        verbose_name=_("status"),
    )
    started_at = models.DateTimeField(null=True, blank=True, verbose_name=_("started at"))
    # Set when every recipient has its message row (the audience is frozen).
    materialized_at = models.DateTimeField(null=True, blank=True, verbose_name=_("materialized at"))
    # Last client pk given a message: materialization resumes after it.
    audience_cursor = models.BigIntegerField(default=0, verbose_name=_("audience cursor"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("mailing")
        verbose_name_plural = _("mailings")
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
        Delivery,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="mailing_message",
        verbose_name=_("delivery"),
    )
    mailing = models.ForeignKey(
        Mailing, on_delete=models.CASCADE, related_name="messages", verbose_name=_("mailing")
    )
    # SET_NULL keeps the statistics of a mailing when a client is deleted.
    client = models.ForeignKey(
        "chat.Client",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("client"),
    )
    # The transport chosen for this client when the message was created; an email's
    # address, subject and HTML part are frozen here (its text is the delivery's).
    transport = models.CharField(
        max_length=10, choices=Transport.choices, default="sms", verbose_name=_("transport")
    )
    address = models.EmailField(max_length=254, blank=True, default="", verbose_name=_("address"))
    subject = models.CharField(max_length=255, blank=True, default="", verbose_name=_("subject"))
    html = models.TextField(blank=True, default="", verbose_name=_("HTML"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("mailing message")
        verbose_name_plural = _("mailing messages")
        constraints = [
            models.UniqueConstraint(fields=["mailing", "client"], name="uniq_mailing_client")
        ]

    def __str__(self) -> str:
        return f"message {self.pk} of mailing {self.mailing_id}"


class MailingSkip(models.Model):
    """A client of the audience who got no message: no usable address on any of the
    mailing's transports, an undeliverable email, an opt-out. Counted in the statistics
    (rows, not counters)."""

    class Reason(models.TextChoices):
        NO_ADDRESS = "no_address", _("No address")
        UNDELIVERABLE = "undeliverable", _("Undeliverable")
        OPTED_OUT = "opted_out", _("Opted out")

    mailing = models.ForeignKey(
        Mailing, on_delete=models.CASCADE, related_name="skips", verbose_name=_("mailing")
    )
    client = models.ForeignKey(
        "chat.Client",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("client"),
    )
    reason = models.CharField(max_length=20, choices=Reason.choices, verbose_name=_("reason"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("mailing skip")
        verbose_name_plural = _("mailing skips")
        constraints = [
            models.UniqueConstraint(fields=["mailing", "client"], name="uniq_mailing_skip_client")
        ]


class EventRule(models.Model):
    """What an organization does when an external service posts an event: send the
    template over the transports after `delay_seconds` (0: now), unless an event named
    in `cancel_events` arrives for the same client first."""

    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="event_rules",
        verbose_name=_("organization"),
    )
    event = models.SlugField(max_length=50, verbose_name=_("event"))
    template = models.ForeignKey(
        Template, on_delete=models.PROTECT, related_name="event_rules", verbose_name=_("template")
    )
    transports = models.JSONField(default=list, blank=True, verbose_name=_("transports"))
    delay_seconds = models.PositiveIntegerField(default=0, verbose_name=_("delay seconds"))
    priority = models.PositiveSmallIntegerField(default=5, verbose_name=_("priority"))
    promo = models.BooleanField(default=False, verbose_name=_("promo"))
    cancel_events = models.JSONField(default=list, blank=True, verbose_name=_("cancel events"))
    active = models.BooleanField(default=True, verbose_name=_("active"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("event rule")
        verbose_name_plural = _("event rules")
        indexes = [models.Index(fields=["organization", "event"])]

    def __str__(self) -> str:
        return f"on {self.event}: {self.template_id} after {self.delay_seconds}s"


class Event(models.Model):
    """One event posted by an external service, processed exactly once: the
    (organization, idempotency_key) constraint refuses the second copy, and the rules
    run in the transaction that inserts the row."""

    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="events",
        verbose_name=_("organization"),
    )
    name = models.SlugField(max_length=50, verbose_name=_("name"))
    client = models.ForeignKey(
        "chat.Client",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("client"),
    )
    data = models.JSONField(default=dict, blank=True, verbose_name=_("data"))
    idempotency_key = models.CharField(max_length=100, verbose_name=_("idempotency key"))
    # Scheduled notifications this event cancelled (the ones it created: `mailings`).
    cancelled = models.JSONField(default=list, blank=True, verbose_name=_("cancelled"))
    # Posts of the same idempotency key after this one (nothing processed again), counted
    # with an F() expression so concurrent repeats are each counted.
    duplicates = models.PositiveIntegerField(default=0, verbose_name=_("duplicates"))
    last_duplicate_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("last duplicate at")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"], name="uniq_event_idempotency_key"
            )
        ]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return f"event {self.pk} {self.name}"
