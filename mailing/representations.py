"""One representation per mailing (and per event posted by an external service): the REST
body, its OpenAPI schema and the payload of the realtime events (`update_mailing`,
`mailing_progress`, `mailing_finished`; `event_received`).

Below the services in the layering (they publish `mailing_event_data(...)`; this module
imports only models and core), so an event carries what the REST API shows (name,
dates, ...): the console renders a mailing created elsewhere from its event alone.
Input validation is in `mailing/serializers.py`, beside the API.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from mailing.models import Event, Mailing


class MailingSerializer(serializers.ModelSerializer[Mailing]):
    organization: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = Mailing
        fields = [
            "id",
            "organization",
            "name",
            "kind",
            "status",
            "start_at",
            "end_at",
            "text",
            "template",
            "context",
            "operator_codes",
            "tags",
            "client_ids",
            "priority",
            "promo",
            "transports",
            "window_start",
            "window_end",
            "started_at",
            "materialized_at",
            "finished_at",
            "created_at",
            "updated_at",
        ]


class MailingCountsSerializer(MailingSerializer):
    counts = serializers.SerializerMethodField()

    class Meta(MailingSerializer.Meta):
        fields = [*MailingSerializer.Meta.fields, "counts"]

    def get_counts(self, obj: Mailing) -> dict[str, int]:
        counts: dict[int, dict[str, int]] = self.context.get("counts", {})
        return counts.get(obj.pk, {})


def mailing_event_data(mailing: Mailing, counts: dict[str, int]) -> dict[str, Any]:
    """The payload of a mailing event: the REST object with its message counts."""
    return dict(MailingCountsSerializer(mailing, context={"counts": {mailing.pk: counts}}).data)


class EventMailingSerializer(serializers.ModelSerializer[Mailing]):
    class Meta:
        model = Mailing
        fields = ["id", "status", "start_at", "rule", "template"]


class EventSerializer(serializers.ModelSerializer[Event]):
    organization: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    event = serializers.CharField(source="name", read_only=True)
    client = serializers.UUIDField(source="client.uuid", read_only=True, allow_null=True)
    mailings = EventMailingSerializer(many=True, read_only=True)
    duplicates = serializers.IntegerField(
        read_only=True,
        help_text="Posts of the same idempotency key after the first (none processed again).",
    )
    last_duplicate_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When the last of them came; null if none."
    )

    class Meta:
        model = Event
        fields = [
            "id",
            "organization",
            "event",
            "client",
            "data",
            "idempotency_key",
            "created_at",
            "mailings",
            "cancelled",
            "duplicates",
            "last_duplicate_at",
        ]


def event_event_data(event: Event, status: str) -> dict[str, Any]:
    """The payload of `event_received`: the REST object, and `status` "processed" (just
    now) or "duplicate" (its idempotency key again: nothing processed)."""
    return {**EventSerializer(event).data, "status": status}
