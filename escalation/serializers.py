"""Escalation payloads: monitoring posts (seed, English, Alertmanager), rules, teams."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.models import Team
from core.validators import tag_validator
from escalation.models import IncidentNotification, IncidentStep, Rule

MAX_TRIGGERS = 1000


@extend_schema_field(
    {"oneOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]{3}$"}], "example": 503}
)
class StatusCodeField(serializers.Field[int, Any, Any, Any]):
    """An HTTP status code, as a number or a string of digits (the seed sends "503")."""

    default_error_messages = {"invalid": 'An HTTP status code (100-599), e.g. 503 or "503".'}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("invalid")
        text = str(data).strip()
        if not text.isdigit() or not 100 <= int(text) <= 599:
            self.fail("invalid")
        return int(text)

    def to_representation(self, value: int) -> int:
        return value


class ServiceField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=100, trim_whitespace=True, **kwargs)


class SeedTriggerSerializer(serializers.Serializer[Any]):
    servico = ServiceField()
    retorno = StatusCodeField()


class TriggerSerializer(serializers.Serializer[Any]):
    service = ServiceField()
    status = StatusCodeField()


class TriggersPayloadSerializer(serializers.Serializer[Any]):
    """Either the seed's `{"gatilhos": [...]}` or `{"triggers": [...]}`."""

    gatilhos = SeedTriggerSerializer(  # type: ignore[call-arg]
        many=True, required=False, allow_empty=False, max_length=MAX_TRIGGERS
    )
    triggers = TriggerSerializer(  # type: ignore[call-arg]
        many=True, required=False, allow_empty=False, max_length=MAX_TRIGGERS
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("gatilhos" in attrs) == ("triggers" in attrs):
            raise serializers.ValidationError(
                {"triggers": ["Send exactly one list: `triggers` (or the seed's `gatilhos`)."]}
            )
        return attrs

    def pairs(self) -> tuple[str, list[tuple[str, int]]]:
        data = self.validated_data
        if "gatilhos" in data:
            return "seed", [(t["servico"], t["retorno"]) for t in data["gatilhos"]]
        return "api", [(t["service"], t["status"]) for t in data["triggers"]]


MAX_LABEL_NAME = 256


def label_name_error(name: str) -> str | None:
    """Why `name` cannot be a label name, or None. Prometheus 3 allows any UTF-8 name,
    so this refuses only what cannot be stored: empty, too long, NUL, a lone surrogate
    (valid in JSON's \\u escapes, not encodable as UTF-8)."""
    if not name or len(name) > MAX_LABEL_NAME:
        return f"A label name has 1 to {MAX_LABEL_NAME} characters."
    if "\x00" in name:
        return "A label name cannot contain NUL."
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "A label name must be valid Unicode (no lone surrogates)."
    return None


class AlertSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=["firing", "resolved"])
    labels = serializers.DictField(child=serializers.CharField(allow_blank=True))

    def validate_labels(self, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if (error := label_name_error(name)) is not None:
                raise serializers.ValidationError(error)
        return value

    annotations = serializers.DictField(required=False)
    startsAt = serializers.CharField(required=False, allow_blank=True)
    endsAt = serializers.CharField(required=False, allow_blank=True)
    fingerprint = serializers.CharField(required=False, allow_blank=True)


class AlertmanagerSerializer(serializers.Serializer[Any]):
    """Prometheus Alertmanager webhook, payload version 4."""

    version = serializers.CharField()
    status = serializers.ChoiceField(choices=["firing", "resolved"])
    receiver = serializers.CharField(required=False, allow_blank=True)
    groupKey = serializers.CharField(required=False, allow_blank=True)
    alerts = AlertSerializer(many=True, allow_empty=False, max_length=MAX_TRIGGERS)  # type: ignore[call-arg]

    def validate_version(self, value: str) -> str:
        if value != "4":
            raise serializers.ValidationError("Only payload version 4 is supported.")
        return value


SERVICE_LABELS = ("service", "job")
STATUS_LABELS = ("status", "code", "status_code")


def alert_pair(labels: dict[str, str]) -> tuple[str, int] | str:
    """(service, status) from an alert's labels, or why it cannot be mapped."""
    service = next((labels[k] for k in SERVICE_LABELS if labels.get(k)), None)
    status = next((labels[k] for k in STATUS_LABELS if labels.get(k)), None)
    if service is None:
        return f"no label among {list(SERVICE_LABELS)}"
    if status is None or not status.strip().isdigit() or not 100 <= int(status) <= 599:
        return f"no numeric status code label among {list(STATUS_LABELS)}"
    return service.strip()[:100], int(status)


# --- rules and teams ------------------------------------------------------------------


class LevelSerializer(serializers.Serializer[Any]):
    level = serializers.IntegerField(min_value=1, max_value=20)
    after_occurrences = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    after_minutes = serializers.FloatField(min_value=0, required=False, allow_null=True)
    team = serializers.SlugField(required=False, allow_null=True, help_text="Team slug.")


class RuleWriteSerializer(serializers.Serializer[Any]):
    organization = serializers.SlugField(required=False, help_text="Only with an agent key.")
    code = serializers.CharField(max_length=50)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False, default=True)
    triggers = TriggerSerializer(many=True, allow_empty=False, max_length=50)  # type: ignore[call-arg]
    warn_after = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    warn_tags = serializers.ListField(
        child=serializers.CharField(max_length=50, validators=[tag_validator]),
        required=False,
        max_length=20,
    )
    warn_message = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    levels = LevelSerializer(many=True, required=False, max_length=20)  # type: ignore[call-arg]


class RuleSerializer(serializers.ModelSerializer[Rule]):
    organization: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    levels = serializers.SerializerMethodField()

    class Meta:
        model = Rule
        fields = [
            "id",
            "organization",
            "code",
            "name",
            "is_active",
            "triggers",
            "warn_after",
            "warn_tags",
            "warn_message",
            "levels",
            "created_at",
            "updated_at",
        ]

    def get_levels(self, rule: Rule) -> list[dict[str, Any]]:
        return [
            {
                "level": lv.level,
                "after_occurrences": lv.after_occurrences,
                "after_minutes": lv.after_minutes,
                "team": lv.team.slug if lv.team else None,
            }
            for lv in rule.levels.all()
        ]


class TeamWriteSerializer(serializers.Serializer[Any]):
    organization = serializers.SlugField(required=False, help_text="Only with an agent key.")
    slug = serializers.SlugField(max_length=49)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    members = serializers.ListField(
        child=serializers.CharField(max_length=150),
        required=False,
        help_text="Usernames, in round-robin order.",
    )


class TeamSerializer(serializers.ModelSerializer[Team]):
    organization: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    members = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = ["id", "organization", "slug", "name", "members"]

    def get_members(self, team: Team) -> list[str]:
        return [m.membership.user.username for m in team.members.all()]


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
