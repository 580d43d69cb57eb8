"""Escalation payloads: monitoring posts (seed, English, Alertmanager), rules, teams,
incidents (also the events' payload) and the 202 of a post."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.models import Team
from core.validators import tag_validator
from escalation.ingest import Payload
from escalation.models import Rule
from escalation.payloads import (
    MAX_SERVICE,
    MAX_TRIGGERS,
    STATUS_INVALID,
    PayloadInvalid,
    parse_alertmanager,
    parse_triggers,
    status_code,
)


@extend_schema_field(
    {"oneOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]{3}$"}], "example": 503}
)
class StatusCodeField(serializers.Field[int, Any, Any, Any]):
    """An HTTP status code, as a number or a string of digits (the seed sends "503")."""

    default_error_messages = {"invalid": STATUS_INVALID}

    def to_internal_value(self, data: Any) -> int:
        code = status_code(data)
        if code is None:
            self.fail("invalid")
        return code

    def to_representation(self, value: int) -> int:
        return value


class ServiceField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=MAX_SERVICE, trim_whitespace=True, **kwargs)


class SeedTriggerSerializer(serializers.Serializer[Any]):
    servico = ServiceField()
    retorno = StatusCodeField()


class TriggerSerializer(serializers.Serializer[Any]):
    service = ServiceField()
    status = StatusCodeField()


class MonitoringPayloadSerializer(serializers.Serializer[Any]):
    """A monitoring post: the declared fields are its OpenAPI schema; validation is the
    one parser the ASGI fast path uses too (`escalation.payloads`), so both accept and
    refuse the same payloads with the same field errors. `validated_data["payload"]` is
    the parsed `escalation.ingest.Payload`."""

    parse: Callable[[Any], Payload]

    def to_internal_value(self, data: Any) -> dict[str, Payload]:
        try:
            return {"payload": type(self).parse(data)}
        except PayloadInvalid as exc:
            raise serializers.ValidationError(exc.fields) from None


class TriggersPayloadSerializer(MonitoringPayloadSerializer):
    """Either the seed's `{"gatilhos": [...]}` or `{"triggers": [...]}`."""

    parse = staticmethod(parse_triggers)
    gatilhos = SeedTriggerSerializer(  # type: ignore[call-arg]
        many=True, required=False, allow_empty=False, max_length=MAX_TRIGGERS
    )
    triggers = TriggerSerializer(  # type: ignore[call-arg]
        many=True, required=False, allow_empty=False, max_length=MAX_TRIGGERS
    )


class AlertSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=["firing", "resolved"])
    labels = serializers.DictField(child=serializers.CharField(allow_blank=True))
    annotations = serializers.DictField(required=False)
    startsAt = serializers.CharField(required=False, allow_blank=True)
    endsAt = serializers.CharField(required=False, allow_blank=True)
    fingerprint = serializers.CharField(required=False, allow_blank=True)


class AlertmanagerSerializer(MonitoringPayloadSerializer):
    """Prometheus Alertmanager webhook, payload version 4."""

    parse = staticmethod(parse_alertmanager)
    version = serializers.CharField(help_text='"4"')
    status = serializers.ChoiceField(choices=["firing", "resolved"])
    receiver = serializers.CharField(required=False, allow_blank=True)
    groupKey = serializers.CharField(required=False, allow_blank=True)
    alerts = AlertSerializer(many=True, allow_empty=False, max_length=MAX_TRIGGERS)  # type: ignore[call-arg]


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


# --- incidents (REST objects and event payloads) --------------------------------------


# --- 202 of a monitoring post -------------------------------------------------------------


class MatchedRuleSerializer(serializers.Serializer[Any]):
    rule = serializers.CharField()
    triggers = serializers.ListField(child=serializers.JSONField())


class TriggersAcceptedSerializer(serializers.Serializer[Any]):
    """The 202 of `POST /api/triggers/` (built by `escalation.payloads.ingest_body`,
    which the fast path shares, so both answer the same bytes)."""

    received = serializers.IntegerField(help_text="Triggers in the post.")
    batches = serializers.ListField(child=serializers.IntegerField())
    matched = MatchedRuleSerializer(many=True)
    unmatched = serializers.ListField(child=serializers.DictField())


class AlertmanagerAcceptedSerializer(TriggersAcceptedSerializer):
    """The 202 of `POST /api/alertmanager/`."""

    resolving = MatchedRuleSerializer(many=True)
    resolved_unmatched = serializers.ListField(child=serializers.DictField())
    ignored = serializers.ListField(
        child=serializers.DictField(), help_text="Alerts whose labels map to no trigger."
    )
