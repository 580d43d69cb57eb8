"""REST shapes for templates, mailings, their messages and statistics."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext
from rest_framework import serializers

from core.validators import operator_code_validator, tag_validator
from mailing.models import (
    EventRule,
    MailingMessage,
    Template,
    TemplateVariant,
    Transport,
)
from mailing.representations import EventSerializer as EventSerializer
from mailing.representations import MailingCountsSerializer as MailingCountsSerializer
from mailing.representations import MailingSerializer as MailingSerializer
from mailing.services.contacts import BOUNCE, COMPLAINT, MAX_BOUNCE_ADDRESSES


class TemplateVariantSerializer(serializers.ModelSerializer[TemplateVariant]):
    class Meta:
        model = TemplateVariant
        fields = ["language", "subject", "body", "html_body", "updated_at"]


class TemplateVariantWriteSerializer(serializers.Serializer[Any]):
    body = serializers.CharField(max_length=2000)
    subject = serializers.CharField(max_length=200, required=False, allow_blank=True)
    html_body = serializers.CharField(max_length=100_000, required=False, allow_blank=True)


class TemplateSerializer(serializers.ModelSerializer[Template]):
    organization: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    variants = TemplateVariantSerializer(
        many=True,
        read_only=True,
        help_text="The texts in other languages (PUT /api/templates/<id>/variants/<language>/); "
        "a client whose language has one receives it, anyone else the template's own.",
    )

    class Meta:
        model = Template
        fields = [
            "id",
            "organization",
            "title",
            "code",
            "body",
            "transport",
            "subject",
            "html_body",
            "variables",
            "variants",
            "created_at",
            "updated_at",
        ]


class TemplateWriteSerializer(serializers.Serializer[Any]):
    organization = serializers.SlugField(required=False, help_text="Required on create.")
    title = serializers.CharField(max_length=200)
    code = serializers.SlugField(max_length=50)
    body = serializers.CharField(
        max_length=2000,
        help_text="Text with {{ placeholders }}: client fields (name, phone, operator_code, "
        "tag, timezone) and the declared variables.",
    )
    transport = serializers.ChoiceField(choices=Template.Transport.choices, required=False)
    subject = serializers.CharField(
        max_length=200, required=False, allow_blank=True, help_text="Email: the subject line."
    )
    html_body = serializers.CharField(
        max_length=50_000,
        required=False,
        allow_blank=True,
        help_text="Email: an optional HTML part; placeholder values are HTML-escaped.",
    )
    variables = serializers.ListField(
        child=serializers.RegexField(r"^[A-Za-z_][A-Za-z0-9_]{0,49}$"),
        required=False,
        max_length=50,
    )


def _filter_list(validator: Any, help_text: str) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(validators=[validator]),
        required=False,
        max_length=100,
        help_text=help_text,
    )


class _WithContextField(serializers.Serializer[Any]):
    """Adds the `context` field (placeholder values) without shadowing `self.context`."""

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        fields["context"] = serializers.DictField(
            required=False, help_text="Values for the template's placeholders."
        )
        return fields


def _transports() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=Transport.choices),
        required=False,
        max_length=len(Transport.choices),
        help_text="In order of preference: a client without a usable address on the first "
        "gets the next (default: the template's transport, or sms).",
    )


class MailingWriteSerializer(_WithContextField):
    organization = serializers.SlugField(required=False, help_text="Required on create.")
    transports = _transports()
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    start_at = serializers.DateTimeField()
    end_at = serializers.DateTimeField(help_text="After start_at. Nothing is sent after it.")
    text = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    template = serializers.IntegerField(required=False, allow_null=True, help_text="Template id.")
    operator_codes = _filter_list(
        operator_code_validator, "Operator codes (3 digits); OR within, AND with tags."
    )
    tags = _filter_list(tag_validator, "Client tags; OR within, AND with operator_codes.")
    client_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=10_000
    )
    priority = serializers.IntegerField(min_value=1, max_value=10, required=False)
    promo = serializers.BooleanField(required=False, help_text="Skips clients who opted out.")
    window_start = serializers.TimeField(
        required=False, allow_null=True, help_text="Daily window start, client's local time."
    )
    window_end = serializers.TimeField(
        required=False, allow_null=True, help_text="Daily window end, client's local time."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start = attrs.get("start_at", getattr(self.instance, "start_at", None))
        end = attrs.get("end_at", getattr(self.instance, "end_at", None))
        if start is not None and end is not None and end <= start:
            raise serializers.ValidationError(
                {"end_at": [gettext("The end time must be after the start time.")]}
            )
        return attrs


class NotificationSerializer(_WithContextField):
    organization = serializers.SlugField(required=False, help_text="Required for agent keys.")
    transports = _transports()
    send_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Send at this time instead of now."
    )
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    text = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    template = serializers.IntegerField(required=False, allow_null=True)
    client_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=10_000
    )
    tags = _filter_list(tag_validator, "Clients with any of these tags (merged with client_ids).")
    priority = serializers.IntegerField(min_value=1, max_value=10, required=False)
    promo = serializers.BooleanField(required=False)


class CountsSerializer(serializers.Serializer[Any]):
    pending = serializers.IntegerField()
    sending = serializers.IntegerField()
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    expired = serializers.IntegerField()
    total = serializers.IntegerField()


class SkippedSerializer(serializers.Serializer[Any]):
    no_address = serializers.IntegerField()
    undeliverable = serializers.IntegerField()
    opted_out = serializers.IntegerField()
    total = serializers.IntegerField()


class ByTransportSerializer(serializers.Serializer[Any]):
    sms = serializers.IntegerField()
    email = serializers.IntegerField()


class MailingStatsSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    counts = CountsSerializer()
    attempts = serializers.IntegerField()
    skipped = SkippedSerializer()
    by_transport = ByTransportSerializer()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    first_sent_at = serializers.DateTimeField(allow_null=True)
    last_sent_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    throughput_per_second = serializers.FloatField(allow_null=True)


class AttemptSerializer(serializers.Serializer[Any]):
    number = serializers.IntegerField()
    outcome = serializers.CharField()
    status_code = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.IntegerField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()


class MailingMessageSerializer(serializers.ModelSerializer[MailingMessage]):
    """The seed's message: id, created, status, mailing id, client id (plus the delivery)."""

    id = serializers.IntegerField(source="pk", read_only=True)
    created = serializers.DateTimeField(source="created_at", read_only=True)
    status = serializers.CharField(source="delivery.status", read_only=True)
    mailing = serializers.IntegerField(source="mailing_id", read_only=True)
    client = serializers.IntegerField(source="client_id", read_only=True, allow_null=True)
    # null for a message of another transport to a client without a phone
    phone = serializers.CharField(source="delivery.phone", read_only=True, allow_null=True)
    transport = serializers.CharField(read_only=True)
    address = serializers.CharField(read_only=True)
    text = serializers.CharField(source="delivery.text", read_only=True)
    sent_at = serializers.DateTimeField(source="delivery.sent_at", read_only=True)
    next_attempt_at = serializers.DateTimeField(source="delivery.next_attempt_at", read_only=True)
    last_error = serializers.CharField(source="delivery.last_error", read_only=True)
    attempts = AttemptSerializer(source="delivery.attempt_rows", many=True, read_only=True)

    class Meta:
        model = MailingMessage
        fields = [
            "id",
            "created",
            "status",
            "mailing",
            "client",
            "phone",
            "transport",
            "address",
            "text",
            "sent_at",
            "next_attempt_at",
            "last_error",
            "attempts",
        ]


class BounceSerializer(serializers.Serializer[Any]):
    organization = serializers.SlugField(required=False, help_text="Required for agent keys.")
    type = serializers.ChoiceField(
        choices=[BOUNCE, COMPLAINT],
        help_text="bounce: the address is undeliverable; complaint: also no promotions.",
    )
    recipients = serializers.ListField(
        child=serializers.EmailField(), min_length=1, max_length=MAX_BOUNCE_ADDRESSES
    )


class BounceResultSerializer(serializers.Serializer[Any]):
    type = serializers.CharField()
    clients = serializers.ListField(
        child=serializers.IntegerField(), help_text="Ids of the clients marked."
    )


class PreviewRequestSerializer(_WithContextField):
    client = serializers.IntegerField(
        min_value=1, help_text="A client of the template's organization."
    )


class PreviewVariantSerializer(serializers.Serializer[Any]):
    language = serializers.CharField(help_text='"" for the template\'s own texts.')
    subject = serializers.CharField()
    text = serializers.CharField()
    html = serializers.CharField()


class PreviewSerializer(serializers.Serializer[Any]):
    transport = serializers.CharField()
    provider = serializers.CharField(help_text="The context provider the template's code chose.")
    language = serializers.CharField(
        help_text='The variant this client receives (its language), "" for the template\'s own.'
    )
    subject = serializers.CharField()
    text = serializers.CharField()
    html = serializers.CharField()
    variants = PreviewVariantSerializer(
        many=True, help_text="The same client in the template's own texts and every variant."
    )


# --- events (issue 15 item 5) ---------------------------------------------------------------


class EventRuleSerializer(serializers.ModelSerializer[EventRule]):
    organization: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = EventRule
        fields = [
            "id",
            "organization",
            "event",
            "template",
            "transports",
            "delay_seconds",
            "priority",
            "promo",
            "cancel_events",
            "active",
            "created_at",
        ]


class EventRuleWriteSerializer(serializers.Serializer[Any]):
    organization = serializers.SlugField(required=False, help_text="Required for agent keys.")
    event = serializers.SlugField(max_length=50)
    template = serializers.IntegerField(help_text="Template id.")
    transports = _transports()
    delay_seconds = serializers.IntegerField(min_value=0, required=False)
    priority = serializers.IntegerField(min_value=1, max_value=10, required=False)
    promo = serializers.BooleanField(required=False)
    cancel_events = serializers.ListField(
        child=serializers.SlugField(max_length=50),
        required=False,
        max_length=20,
        help_text="Events that cancel this rule's delayed notification for the client.",
    )


class EventRuleUpdateSerializer(serializers.Serializer[Any]):
    """PATCH: any subset of a rule's fields (the organization does not change)."""

    event = serializers.SlugField(max_length=50, required=False)
    template = serializers.IntegerField(required=False, help_text="Template id.")
    transports = _transports()
    delay_seconds = serializers.IntegerField(min_value=0, required=False)
    priority = serializers.IntegerField(min_value=1, max_value=10, required=False)
    promo = serializers.BooleanField(required=False)
    cancel_events = serializers.ListField(
        child=serializers.SlugField(max_length=50), required=False, max_length=20
    )
    active = serializers.BooleanField(required=False)


def _scalar_map(value: Any) -> None:
    if not isinstance(value, dict) or len(value) > 50:
        raise serializers.ValidationError(gettext("An object of at most 50 names."))
    bad = [
        str(k)[:50]
        for k, v in value.items()
        if not isinstance(k, str)
        or not k.isidentifier()
        or len(k) > 50
        or not isinstance(v, str | int | float | bool)
        or len(str(v)) > 1000
    ]
    if bad:
        raise serializers.ValidationError(
            gettext(
                "Invalid entries: %(entries)s (names are identifiers, values text or numbers "
                "up to 1000 characters)."
            )
            % {"entries": ", ".join(bad[:10])}
        )


class EventInSerializer(serializers.Serializer[Any]):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        # Added here: a `data` attribute would shadow the serializer's own `.data`.
        fields["data"] = serializers.JSONField(
            required=False,
            default=dict,
            validators=[_scalar_map],
            help_text="Values for the templates' variables.",
        )
        return fields

    organization = serializers.SlugField(required=False, help_text="Required for agent keys.")
    event = serializers.SlugField(max_length=50, help_text="The event's name: user_registered.")
    client = serializers.CharField(
        max_length=254, help_text="The client: its uuid, phone (7XXXXXXXXXX) or email."
    )
    idempotency_key = serializers.CharField(
        max_length=100, help_text="Unique per organization: a repeated key is not processed again."
    )
