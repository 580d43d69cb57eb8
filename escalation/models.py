"""Escalation (seed 001): trigger rules, incidents, and the steps they fired."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.models import Organization, OutboxAttempt, OutboxItem, Team


class Rule(models.Model):
    """An "action" of the seed: a set of triggers, a customer warning, internal levels.

    `triggers` is a list of {"service": str, "status": int}, stored sorted and without
    duplicates: matching is on the set, whatever the order of the posted payload.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="escalation_rules"
    )
    code = models.CharField(max_length=50)
    name = models.CharField(max_length=200, blank=True, default="")
    is_active = models.BooleanField(default=True)
    triggers = models.JSONField(default=list)
    # External communication: after at least `warn_after` occurrences, warn the
    # clients with one of `warn_tags` (through the mailing dispatch).
    warn_after = models.PositiveIntegerField(null=True, blank=True)
    warn_tags = models.JSONField(default=list, blank=True)
    warn_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "code"], name="uniq_rule_code")
        ]

    def __str__(self) -> str:
        return f"rule {self.code}"


class RuleLevel(models.Model):
    """Internal escalation level k: after V occurrences OR D minutes since opening."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="levels")
    level = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    after_occurrences = models.PositiveIntegerField(null=True, blank=True)
    after_minutes = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0)])
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="escalation_levels"
    )

    class Meta:
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
        SEED = "seed"  # {"gatilhos": [...]}
        API = "api"  # {"triggers": [...]}
        ALERTMANAGER = "alertmanager"

    class Kind(models.TextChoices):
        FIRING = "firing"
        RESOLVED = "resolved"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="trigger_batches"
    )
    source = models.CharField(max_length=12, choices=Source.choices)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.FIRING)
    triggers = models.JSONField(default=list)
    # Alertmanager: the posted alerts as [service, status, fingerprint] (IncidentAlert).
    alerts = models.JSONField(default=list, blank=True)
    matched_rules = models.JSONField(default=list, blank=True)
    unmatched = models.JSONField(default=list, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "trigger batches"
        indexes = [models.Index(fields=["organization", "evaluated_at"])]

    def __str__(self) -> str:
        return f"trigger batch {self.pk} ({self.kind}, {len(self.triggers)} triggers)"


class Incident(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"  # counted, but no further escalation
        RESOLVED = "resolved"

    ACTIVE = (Status.OPEN, Status.ACKNOWLEDGED)

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="incidents"
    )
    rule = models.ForeignKey(
        Rule, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )
    # The rule as it was when the incident opened: later edits do not change it.
    rule_snapshot = models.JSONField(default=dict)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    occurrences = models.PositiveIntegerField(default=0)
    level = models.PositiveSmallIntegerField(default=0)
    opened_at = models.DateTimeField()
    last_occurrence_at = models.DateTimeField()
    customers_warned_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolve_reason = models.CharField(max_length=20, blank=True, default="")
    # Fencing token: only the scheduled check job carrying this id may act.
    active_job_id = models.CharField(max_length=64, blank=True, default="")
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
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

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="alerts")
    fingerprint = models.CharField(max_length=64)
    service = models.CharField(max_length=100)
    status = models.PositiveSmallIntegerField()
    firing = models.BooleanField(default=True)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
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
        WARNING = "warning"
        LEVEL = "level"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="steps")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    level = models.PositiveSmallIntegerField(default=0)  # 0 for the warning
    reason = models.CharField(max_length=20)  # occurrences | duration | implied
    occurrences = models.PositiveIntegerField()
    elapsed_seconds = models.FloatField()
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    mailing_id = models.BigIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    fired_at = models.DateTimeField()

    class Meta:
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
        EMAIL = "email"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        EXPIRED = "expired"
        SKIPPED = "skipped"

    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    step = models.ForeignKey(IncidentStep, on_delete=models.CASCADE, related_name="notifications")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    address = models.CharField(max_length=254, blank=True, default="")

    class Meta:
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
        IncidentNotification, on_delete=models.CASCADE, related_name="attempt_rows"
    )

    class Meta:
        ordering = ["notification_id", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of notification {self.notification_id}"
