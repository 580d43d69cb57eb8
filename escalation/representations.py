"""One representation per incident: the REST body, its OpenAPI schema and the event
payload (`escalation.incidents` publishes `IncidentSerializer(incident).data`).

Below the services in the layering: it imports only models and core. Input validation
is in `escalation/serializers.py`, beside the API.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.fields import IsoDateTimeField
from escalation.models import Incident, IncidentNotification, IncidentStep


class IncidentNotificationSerializer(serializers.ModelSerializer[IncidentNotification]):
    class Meta:
        model = IncidentNotification
        fields = ["username", "channel", "status", "attempts", "error", "sent_at"]


class IncidentStepSerializer(serializers.ModelSerializer[IncidentStep]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    notifications = IncidentNotificationSerializer(many=True, read_only=True)

    class Meta:
        model = IncidentStep
        fields = [
            "kind",
            "level",
            "reason",
            "occurrences",
            "elapsed_seconds",
            "team",
            "mailing_id",
            "error",
            "fired_at",
            "notifications",
        ]


class IncidentSerializer(serializers.Serializer[Incident]):
    """An incident: the REST object and the payload of the `incident_*` events (strings
    only, msgpack-safe). Services build the events with `IncidentSerializer(i).data`
    (this module imports no view). The rule is the snapshot frozen when it opened."""

    id = serializers.UUIDField(source="uuid", read_only=True)
    organization = serializers.CharField(source="organization.slug", read_only=True)
    rule = serializers.SerializerMethodField(help_text="The rule's code when it opened.")
    rule_name = serializers.SerializerMethodField(
        help_text="The rule's name when it opened (its code if it had none)."
    )
    triggers = serializers.SerializerMethodField(help_text="The rule's triggers when it opened.")
    status = serializers.ChoiceField(choices=Incident.Status.choices, read_only=True)
    occurrences = serializers.IntegerField(read_only=True)
    level = serializers.IntegerField(read_only=True)
    opened_at = IsoDateTimeField()
    last_occurrence_at = IsoDateTimeField()
    customers_warned_at = IsoDateTimeField(allow_null=True)
    acknowledged_at = IsoDateTimeField(allow_null=True)
    acknowledged_by = serializers.CharField(
        source="acknowledged_by.username", read_only=True, allow_null=True
    )
    resolved_at = IsoDateTimeField(allow_null=True)
    resolved_by = serializers.CharField(
        source="resolved_by.username", read_only=True, allow_null=True
    )
    resolve_reason = serializers.SerializerMethodField()
    next_check_at = IsoDateTimeField(allow_null=True)

    def get_rule(self, incident: Incident) -> str | None:
        return incident.rule_snapshot.get("code")

    def get_rule_name(self, incident: Incident) -> str | None:
        return incident.rule_snapshot.get("name") or incident.rule_snapshot.get("code")

    @extend_schema_field(serializers.ListField(child=serializers.JSONField()))
    def get_triggers(self, incident: Incident) -> list[Any]:
        return list(incident.rule_snapshot.get("triggers", []))

    def get_resolve_reason(self, incident: Incident) -> str | None:
        return incident.resolve_reason or None


class IncidentDetailSerializer(IncidentSerializer):
    """`GET /api/incidents/<uuid>/`: the incident and its escalation steps."""

    steps = serializers.SerializerMethodField()

    @extend_schema_field(IncidentStepSerializer(many=True))
    def get_steps(self, incident: Incident) -> Any:
        steps = incident.steps.select_related("team").prefetch_related("notifications")
        return IncidentStepSerializer(steps, many=True).data
