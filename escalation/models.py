"""Escalation (seed 001): trigger rules, incidents, and the steps they fired."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.models import Organization, OutboxAttempt, OutboxItem, Team


class Rule(models.Model):
    """An "action" of the seed: a set of triggers, a customer warning, internal levels.

    `triggers` is a list of {"service": str, "status": int}, stored sorted and without
    duplicates: matching is on the set, whatever the order of the posted payload.
    """

    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="escalation_rules",
        verbose_name=_("organization"),
    )
    code = models.CharField(max_length=50, verbose_name=_("code"))
    name = models.CharField(max_length=200, blank=True, default="", verbose_name=_("name"))
    is_active = models.BooleanField(default=True, verbose_name=_("active"))
    triggers = models.JSONField(default=list, verbose_name=_("triggers"))
    # External communication: after at least `warn_after` occurrences, warn the
    # clients with one of `warn_tags` (through the mailing dispatch).
    warn_after = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=_("warn after occurrences")
    )
    warn_tags = models.JSONField(default=list, blank=True, verbose_name=_("warning tags"))
    warn_message = models.TextField(blank=True, default="", verbose_name=_("warning message"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("rule")
        verbose_name_plural = _("rules")
        ordering = ["organization_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "code"], name="uniq_rule_code")
        ]

    def __str__(self) -> str:
        return f"rule {self.code}"


class RuleLevel(models.Model):
    """Internal escalation level k: after V occurrences OR D minutes since opening."""

    rule = models.ForeignKey(
        Rule, on_delete=models.CASCADE, related_name="levels", verbose_name=_("rule")
    )
    level = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1)], verbose_name=_("level")
    )
    after_occurrences = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=_("after occurrences")
    )
    after_minutes = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0)], verbose_name=_("after minutes")
    )
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="escalation_levels",
        verbose_name=_("team"),
    )

    class Meta:
        verbose_name = _("rule level")
        verbose_name_plural = _("rule levels")
        ordering = ["rule_id", "level"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "level"], name="uniq_rule_level"),
            models.CheckConstraint(
                condition=Q(after_occurrences__isnull=False) | Q(after_minutes__isnull=False),
                name="rule_level_has_threshold",
            ),
        ]

    def __str__(self) -> str:
        return f"level {self.level} of rule {self.rule_id}"


class TriggerBatch(models.Model):
    """One monitoring post, recorded as received (matched or not).

    `triggers` are the posted [service, status] pairs; `matched_rules` the ids of the
    rules whose trigger set is contained in them (firing) or touched by them
    (resolved). `evaluated_at` is set when the evaluation job has applied it.
    """

    class Source(models.TextChoices):
        SEED = "seed", _("Seed")  # {"gatilhos": [...]}
        API = "api", _("API")  # {"triggers": [...]}
        ALERTMANAGER = "alertmanager", _("Alertmanager")

    class Kind(models.TextChoices):
        FIRING = "firing", _("Firing")
        RESOLVED = "resolved", _("Resolved")

    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="trigger_batches",
        verbose_name=_("organization"),
    )
    source = models.CharField(max_length=12, choices=Source.choices, verbose_name=_("source"))
    kind = models.CharField(
        max_length=8, choices=Kind.choices, default=Kind.FIRING, verbose_name=_("kind")
    )
    triggers = models.JSONField(default=list, verbose_name=_("triggers"))
    # Alertmanager: the posted alerts as [service, status, fingerprint] (IncidentAlert).
    alerts = models.JSONField(default=list, blank=True, verbose_name=_("alerts"))
    matched_rules = models.JSONField(default=list, blank=True, verbose_name=_("matched rules"))
    unmatched = models.JSONField(default=list, blank=True, verbose_name=_("unmatched"))
    received_at = models.DateTimeField(
        default=timezone.now, db_index=True, verbose_name=_("received at")
    )
    evaluated_at = models.DateTimeField(null=True, blank=True, verbose_name=_("evaluated at"))

    class Meta:
        verbose_name = _("trigger batch")
        verbose_name_plural = _("trigger batches")
        indexes = [models.Index(fields=["organization", "evaluated_at"])]

    def __str__(self) -> str:
        return f"trigger batch {self.pk} ({self.kind}, {len(self.triggers)} triggers)"


class Incident(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        ACKNOWLEDGED = "acknowledged", _("Acknowledged")  # counted, but no further escalation
        RESOLVED = "resolved", _("Resolved")

    ACTIVE = (Status.OPEN, Status.ACKNOWLEDGED)

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name=_("UUID"))
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="incidents",
        verbose_name=_("organization"),
    )
    rule = models.ForeignKey(
        Rule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="incidents",
        verbose_name=_("rule"),
    )
    # The rule as it was when the incident opened: later edits do not change it.
    rule_snapshot = models.JSONField(default=dict, verbose_name=_("rule snapshot"))
    status = models.CharField(
        max_length=12,
        choices=Status.choices,
        default=Status.OPEN,
        db_index=True,
        verbose_name=_("status"),
    )
    occurrences = models.PositiveIntegerField(default=0, verbose_name=_("occurrences"))
    level = models.PositiveSmallIntegerField(default=0, verbose_name=_("level"))
    opened_at = models.DateTimeField(verbose_name=_("opened at"))
    last_occurrence_at = models.DateTimeField(verbose_name=_("last occurrence at"))
    customers_warned_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("customers warned at")
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True, verbose_name=_("acknowledged at"))
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("acknowledged by"),
    )
    resolved_at = models.DateTimeField(null=True, blank=True, verbose_name=_("resolved at"))
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("resolved by"),
    )
    resolve_reason = models.CharField(
        max_length=20, blank=True, default="", verbose_name=_("resolve reason")
    )
    # Fencing token: only the scheduled check job carrying this id may act.
    active_job_id = models.CharField(
        max_length=64, blank=True, default="", verbose_name=_("active job ID")
    )
    next_check_at = models.DateTimeField(
        null=True, blank=True, db_index=True, verbose_name=_("next check at")
    )

    class Meta:
        verbose_name = _("incident")
        verbose_name_plural = _("incidents")
        constraints = [
            # Deduplication by rule: at most one active incident per rule.
            models.UniqueConstraint(
                fields=["rule"],
                condition=Q(status__in=["open", "acknowledged"]),
                name="one_active_incident_per_rule",
            )
        ]
        indexes = [models.Index(fields=["organization", "-id"])]

    def __str__(self) -> str:
        return f"incident {self.uuid} ({self.status}, level {self.level})"


class IncidentAlert(models.Model):
    """One Alertmanager alert behind an incident, by fingerprint (escalation/alerts.py).

    An incident fed by alerts is resolved by Alertmanager only when none of them is
    still firing: two instances failing the same (service, status) are two alerts, and
    the recovery of one leaves the incident open.
    """

    incident = models.ForeignKey(
        Incident, on_delete=models.CASCADE, related_name="alerts", verbose_name=_("incident")
    )
    fingerprint = models.CharField(max_length=64, verbose_name=_("fingerprint"))
    service = models.CharField(max_length=100, verbose_name=_("service"))
    status = models.PositiveSmallIntegerField(verbose_name=_("status"))
    firing = models.BooleanField(default=True, verbose_name=_("firing"))
    first_seen_at = models.DateTimeField(verbose_name=_("first seen at"))
    last_seen_at = models.DateTimeField(verbose_name=_("last seen at"))
    resolved_at = models.DateTimeField(null=True, blank=True, verbose_name=_("resolved at"))

    class Meta:
        verbose_name = _("incident alert")
        verbose_name_plural = _("incident alerts")
        ordering = ["incident_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "fingerprint", "service", "status"],
                name="uniq_incident_alert",
            )
        ]

    def __str__(self) -> str:
        state = "firing" if self.firing else "resolved"
        return f"alert {self.fingerprint} {self.service}/{self.status} ({state})"


class IncidentStep(models.Model):
    """A step an incident fired: the customer warning or a level. Once each."""

    class Kind(models.TextChoices):
        WARNING = "warning", _("Warning")
        LEVEL = "level", _("Level")

    incident = models.ForeignKey(
        Incident, on_delete=models.CASCADE, related_name="steps", verbose_name=_("incident")
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, verbose_name=_("kind"))
    # 0 for the warning
    level = models.PositiveSmallIntegerField(default=0, verbose_name=_("level"))
    # occurrences | duration | implied
    reason = models.CharField(max_length=20, verbose_name=_("reason"))
    occurrences = models.PositiveIntegerField(verbose_name=_("occurrences"))
    elapsed_seconds = models.FloatField(verbose_name=_("elapsed seconds"))
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("team"),
    )
    mailing_id = models.BigIntegerField(null=True, blank=True, verbose_name=_("mailing ID"))
    error = models.CharField(max_length=500, blank=True, default="", verbose_name=_("error"))
    fired_at = models.DateTimeField(verbose_name=_("fired at"))

    class Meta:
        verbose_name = _("incident step")
        verbose_name_plural = _("incident steps")
        ordering = ["incident_id", "fired_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "kind", "level"], name="uniq_incident_step")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.level} of incident {self.incident_id}"


class IncidentNotification(OutboxItem):
    """One team member told of a level, by one channel: unique per (step, member,
    channel), so firing a step twice or running its job twice never emails twice.

    An outbox item (core.outbox): `pending` rows are claimed with a token by
    `incident_step_notify`, each try is an `IncidentNotificationAttempt`; a worker
    killed while `sending` leaves it to the sweeper, which puts it back to `pending`
    (at least once, never twice while the first worker is alive, and a late worker
    cannot overwrite the reclaimed row). `skipped` means no address.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", _("Email")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired")
        SKIPPED = "skipped", _("Skipped")

    status = models.CharField(
        max_length=10,
        choices=Status.choices,
        default=Status.PENDING,
        db_index=True,
        verbose_name=_("status"),
    )
    step = models.ForeignKey(
        IncidentStep, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("step")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("user"),
    )
    username = models.CharField(max_length=150, verbose_name=_("username"))
    channel = models.CharField(
        max_length=10, choices=Channel.choices, default=Channel.EMAIL, verbose_name=_("channel")
    )
    address = models.CharField(max_length=254, blank=True, default="", verbose_name=_("address"))

    class Meta:
        verbose_name = _("incident notification")
        verbose_name_plural = _("incident notifications")
        ordering = ["step_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["step", "username", "channel"], name="uniq_incident_notification"
            )
        ]

    @property
    def error(self) -> str:
        """The API's and the admin's name for `last_error` (the outbox column)."""
        return self.last_error

    def __str__(self) -> str:
        return f"{self.channel} to {self.username} for step {self.step_id} ({self.status})"


class IncidentNotificationAttempt(OutboxAttempt):
    """One try of an incident notification (an email handed to the backend)."""

    notification = models.ForeignKey(
        IncidentNotification,
        on_delete=models.CASCADE,
        related_name="attempt_rows",
        verbose_name=_("notification"),
    )

    class Meta:
        verbose_name = _("incident notification attempt")
        verbose_name_plural = _("incident notification attempts")
        ordering = ["notification_id", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of notification {self.notification_id}"
