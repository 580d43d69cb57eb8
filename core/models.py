"""Platform models: organizations, membership, API keys, teams, and the outbox: the
abstract `OutboxItem`/`OutboxAttempt` every channel's rows derive from (here rather
than in core/outbox/, which imports the concrete models) and the sender's `Delivery`."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

# Slugs become Redis keys and channel group names, so they are restricted to the
# characters Channels accepts ([a-zA-Z0-9-_.], < 100 chars).
slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,48}$", "Use 1-49 lowercase letters, digits or '-'."
)


class Organization(models.Model):
    slug = models.CharField(max_length=49, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin"
        AGENT = "agent"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.AGENT)
    # Available agents take part in round-robin assignment (assistance).
    is_available = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="uniq_membership")
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization} ({self.role})"


class AgentPreference(models.Model):
    """What one person chose for themselves, whatever the organization: the console's
    language and attention settings. Created on first save; absent means defaults."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference"
    )
    # Blank: follow the browser's Accept-Language.
    language = models.CharField(max_length=10, blank=True, default="")
    notify_desktop = models.BooleanField(default=False)
    notify_sound = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"preferences of {self.user}"


class ApiKey(models.Model):
    """A bearer credential. Only the SHA-256 of the key is stored.

    An *agent* key acts as its user (all of that user's organizations). An
    *integration* key (bots, monitoring) is scoped to one organization and has no user.
    """

    class Kind(models.TextChoices):
        AGENT = "agent"
        INTEGRATION = "integration"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_keys",
    )
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # What the key may do (core/scopes.py); least privilege by kind when created.
    scopes = models.JSONField(default=list, blank=True)

    class Meta:
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
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"  # not sent before its deadline (a mailing's end time)


class OutboxItem(models.Model):
    """One message the platform sends out, on any channel (core.outbox has the protocol).

    Status only moves forward (pending -> sending -> sent | failed | expired);
    `claim_token` fences the worker that owns the attempt in flight. A concrete model
    adds what is sent (phone and text, a webhook body, an email address) and may widen
    `status` with states of its own (an incident notification can be `skipped`).
    """

    Status = OutboxStatus

    status = models.CharField(
        max_length=10, choices=OutboxStatus.choices, default=OutboxStatus.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    deadline = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=64, blank=True, default="")
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class OutboxAttemptOutcome(models.TextChoices):
    OK = "ok"
    TRANSIENT = "transient"  # timeout, connection error, 408/425/429, 5xx, garbage: retried
    PERMANENT = "permanent"  # any other 4xx, a refused address: final
    # Written with the claim, before the call; a reclaim turns it into `lost`.
    IN_FLIGHT = "in_flight"
    LOST = "lost"  # the worker stopped during the call: no outcome known


class OutboxAttempt(models.Model):
    """One try of an outbox item, whatever its outcome. The concrete model adds the
    foreign key to its item (`related_name="attempt_rows"`)."""

    Outcome = OutboxAttemptOutcome

    number = models.PositiveIntegerField()
    outcome = models.CharField(max_length=10, choices=OutboxAttemptOutcome.choices)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField()
    error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class Delivery(OutboxItem):
    """One message handed to the external sender. Its id is the sender's msgId.

    The id is the idempotency key: every attempt for this row reuses it, so a retry
    after a lost answer cannot make the provider send twice.
    """

    class Source(models.TextChoices):
        CHAT = "chat"
        MAILING = "mailing"
        ESCALATION = "escalation"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="deliveries"
    )
    source = models.CharField(max_length=12, choices=Source.choices)
    phone = models.BigIntegerField()
    text = models.TextField()

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.status})"


class DeliveryAttempt(OutboxAttempt):
    """One HTTP call to the external sender, whatever its outcome."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_rows")

    class Meta:
        ordering = ["delivery_id", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {self.outcome}"


class Team(models.Model):
    """A group of agents of one organization (assistance topics, escalation levels)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=100)
    slug = models.CharField(max_length=49, validators=[slug_validator])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization_id", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="uniq_team_slug")
        ]

    def __str__(self) -> str:
        return f"{self.slug} @ {self.organization_id}"


class TeamMember(models.Model):
    """A membership in a team; `order` is the round-robin order (then id)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="members")
    membership = models.ForeignKey(
        Membership, on_delete=models.CASCADE, related_name="team_memberships"
    )
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["team_id", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["team", "membership"], name="uniq_team_member")
        ]

    def __str__(self) -> str:
        return f"{self.membership_id} in team {self.team_id}"
