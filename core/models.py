"""Platform models: organizations, membership, API keys, teams, and the outbox: the
abstract `OutboxItem`/`OutboxAttempt` every channel's rows derive from (here rather
than in core/outbox/, which imports the concrete models) and the sender's `Delivery`."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

# Slugs become Redis keys and channel group names, so they are restricted to the
# characters Channels accepts ([a-zA-Z0-9-_.], < 100 chars).
slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,48}$", _("Use 1-49 lowercase letters, digits or '-'.")
)


class Organization(models.Model):
    slug = models.CharField(
        max_length=49, unique=True, validators=[slug_validator], verbose_name=_("slug")
    )
    name = models.CharField(max_length=200, verbose_name=_("name"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("organization")
        verbose_name_plural = _("organizations")
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", _("Admin")
        AGENT = "agent", _("Agent")

    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("organization"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("user"),
    )
    role = models.CharField(
        max_length=10, choices=Role.choices, default=Role.AGENT, verbose_name=_("role")
    )
    # Available agents take part in round-robin assignment (assistance).
    is_available = models.BooleanField(default=True, verbose_name=_("available"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="uniq_membership")
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization} ({self.role})"


class AgentPreference(models.Model):
    """What one person chose for themselves, whatever the organization: the console's
    language, time zone and attention settings. Created on first save; absent means
    defaults."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="preference",
        verbose_name=_("user"),
    )
    # Blank: follow the browser's Accept-Language.
    language = models.CharField(max_length=10, blank=True, default="", verbose_name=_("language"))
    notify_desktop = models.BooleanField(default=False, verbose_name=_("desktop notifications"))
    notify_sound = models.BooleanField(default=False, verbose_name=_("sound notifications"))
    # An IANA name (core.preferences checks it); blank: the browser's zone (the `tz` cookie).
    time_zone = models.CharField(max_length=64, blank=True, default="", verbose_name=_("time zone"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("agent preferences")
        verbose_name_plural = _("agent preferences")

    def __str__(self) -> str:
        return f"preferences of {self.user}"


class ApiKey(models.Model):
    """A bearer credential. Only the SHA-256 of the key is stored.

    An *agent* key acts as its user (all of that user's organizations). An
    *integration* key (bots, monitoring) is scoped to one organization and has no user.
    """

    class Kind(models.TextChoices):
        AGENT = "agent", _("Agent")
        INTEGRATION = "integration", _("Integration")

    kind = models.CharField(max_length=12, choices=Kind.choices, verbose_name=_("kind"))
    name = models.CharField(max_length=100, verbose_name=_("name"))
    prefix = models.CharField(max_length=12, db_index=True, verbose_name=_("prefix"))
    key_hash = models.CharField(max_length=64, unique=True, verbose_name=_("key hash"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_keys",
        verbose_name=_("user"),
    )
    organization = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_keys",
        verbose_name=_("organization"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    last_used_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last used at"))
    revoked_at = models.DateTimeField(null=True, blank=True, verbose_name=_("revoked at"))
    # What the key may do (core/scopes.py); least privilege by kind when created.
    scopes = models.JSONField(default=list, blank=True, verbose_name=_("scopes"))

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(kind="agent", user__isnull=False, organization__isnull=True))
                | (models.Q(kind="integration", user__isnull=True, organization__isnull=False)),
                name="apikey_kind_scope",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.prefix}… ({self.name})"


class OutboxStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    EXPIRED = "expired", _("Expired")  # not sent before its deadline (a mailing's end time)


class OutboxItem(models.Model):
    """One message the platform sends out, on any channel (core.outbox has the protocol).

    Status only moves forward (pending -> sending -> sent | failed | expired);
    `claim_token` fences the worker that owns the attempt in flight. A concrete model
    adds what is sent (phone and text, a webhook body, an email address) and may widen
    `status` with states of its own (an incident notification can be `skipped`).
    """

    Status = OutboxStatus

    status = models.CharField(
        max_length=10,
        choices=OutboxStatus.choices,
        default=OutboxStatus.PENDING,
        db_index=True,
        verbose_name=_("status"),
    )
    attempts = models.PositiveIntegerField(default=0, verbose_name=_("attempts"))
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, db_index=True, verbose_name=_("next attempt at")
    )
    deadline = models.DateTimeField(null=True, blank=True, verbose_name=_("deadline"))
    claim_token = models.CharField(
        max_length=64, blank=True, default="", verbose_name=_("claim token")
    )
    claimed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("claimed at"))
    last_error = models.CharField(
        max_length=500, blank=True, default="", verbose_name=_("last error")
    )
    sent_at = models.DateTimeField(null=True, blank=True, verbose_name=_("sent at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        abstract = True


class OutboxAttemptOutcome(models.TextChoices):
    OK = "ok", _("OK")
    # timeout, connection error, 408/425/429, 5xx, garbage: retried
    TRANSIENT = "transient", _("Transient")
    PERMANENT = "permanent", _("Permanent")  # any other 4xx, a refused address: final
    # Written with the claim, before the call; a reclaim turns it into `lost`.
    IN_FLIGHT = "in_flight", _("In flight")
    LOST = "lost", _("Lost")  # the worker stopped during the call: no outcome known


class OutboxAttempt(models.Model):
    """One try of an outbox item, whatever its outcome. The concrete model adds the
    foreign key to its item (`related_name="attempt_rows"`)."""

    Outcome = OutboxAttemptOutcome

    number = models.PositiveIntegerField(verbose_name=_("number"))
    outcome = models.CharField(
        max_length=10, choices=OutboxAttemptOutcome.choices, verbose_name=_("outcome")
    )
    status_code = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("status code"))
    duration_ms = models.PositiveIntegerField(verbose_name=_("duration (ms)"))
    error = models.CharField(max_length=500, blank=True, default="", verbose_name=_("error"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        abstract = True


class Delivery(OutboxItem):
    """One message handed to the external sender. Its id is the sender's msgId.

    The id is the idempotency key: every attempt for this row reuses it, so a retry
    after a lost answer cannot make the provider send twice.
    """

    class Source(models.TextChoices):
        CHAT = "chat", _("Chat")
        MAILING = "mailing", _("Mailing")
        ESCALATION = "escalation", _("Escalation")

    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("organization"),
    )
    source = models.CharField(max_length=12, choices=Source.choices, verbose_name=_("source"))
    # NULL for a message that goes by another transport (an email-only client's mailing
    # message): no SMS is ever tried without one (core.sender, mailing.dispatch.batch).
    phone = models.BigIntegerField(null=True, blank=True, verbose_name=_("phone"))
    text = models.TextField(verbose_name=_("text"))

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.status})"


class DeliveryAttempt(OutboxAttempt):
    """One HTTP call to the external sender, whatever its outcome."""

    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="attempt_rows", verbose_name=_("delivery")
    )

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering = ["delivery_id", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {self.outcome}"


class Team(models.Model):
    """A group of agents of one organization (assistance topics, escalation levels)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="teams", verbose_name=_("organization")
    )
    name = models.CharField(max_length=100, verbose_name=_("name"))
    slug = models.CharField(max_length=49, validators=[slug_validator], verbose_name=_("slug"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("team")
        verbose_name_plural = _("teams")
        ordering = ["organization_id", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="uniq_team_slug")
        ]

    def __str__(self) -> str:
        return f"{self.slug} @ {self.organization_id}"


class TeamMember(models.Model):
    """A membership in a team; `order` is the round-robin order (then id)."""

    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="members", verbose_name=_("team")
    )
    membership = models.ForeignKey(
        Membership,
        on_delete=models.CASCADE,
        related_name="team_memberships",
        verbose_name=_("membership"),
    )
    order = models.PositiveIntegerField(default=0, verbose_name=_("order"))

    class Meta:
        verbose_name = _("team member")
        verbose_name_plural = _("team members")
        ordering = ["team_id", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["team", "membership"], name="uniq_team_member")
        ]

    def __str__(self) -> str:
        return f"{self.membership_id} in team {self.team_id}"
