"""REST shapes. The seed's fields come first and keep their names and formats."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.utils.translation import gettext
from rest_framework import serializers

from chat.models import AssistanceTopic, HelpDesk, Message
from chat.representations import AssistanceRequestSerializer, MessageSerializer
from core.validators import phone_validator, tag_validator, validate_timezone, validate_upload

# `\d` in phone_validator also matches non-ASCII digits (Arabic-Indic...), which int() then
# accepts too; the API only takes ASCII. (Here rather than in phone_validator, whose
# pattern is frozen into the model's migration.)
ascii_digits_validator = RegexValidator(r"^[0-9]*\Z", "Use the digits 0-9 only.")


class ClientWriteSerializer(serializers.Serializer[Any]):
    organization = serializers.SlugField(required=False, help_text="Required on create.")
    name = serializers.CharField(max_length=200)
    phone = serializers.CharField(validators=[ascii_digits_validator, phone_validator])
    operator_code = serializers.CharField(
        validators=[ascii_digits_validator],
        max_length=3,
        required=False,
        help_text="Digits 2-4 of the phone; derived when omitted.",
    )
    tag = serializers.CharField(
        max_length=50, required=False, allow_blank=True, validators=[tag_validator]
    )
    timezone = serializers.CharField(max_length=64, required=False, validators=[validate_timezone])
    promo_opt_out = serializers.BooleanField(required=False)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    language = serializers.ChoiceField(
        choices=[("", "the template's default"), *settings.LANGUAGES],
        required=False,
        allow_blank=True,
    )
    email_promo_opt_out = serializers.BooleanField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        phone = attrs.get("phone") or getattr(self.instance, "phone", "")
        code = attrs.get("operator_code")
        if code is not None and phone and phone[1:4] != code:
            raise serializers.ValidationError(
                {
                    "operator_code": [
                        gettext("Operator code must be %(code)s, digits 2-4 of the phone.")
                        % {"code": phone[1:4]}
                    ]
                }
            )
        return attrs


class HelpDeskCreateSerializer(serializers.Serializer[Any]):
    client = serializers.UUIDField()


class HelpDeskUpdateSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=HelpDesk.Status.choices, required=False)
    assignee = serializers.CharField(required=False, allow_null=True, help_text="Username or null.")


class SendMessageSerializer(serializers.Serializer[Any]):
    help_desk = serializers.UUIDField()
    message = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")
    file = serializers.FileField(required=False, allow_null=True, validators=[validate_upload])

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("message", "").strip() and not attrs.get("file"):
            raise serializers.ValidationError(
                {"message": [gettext("Send a text, a file, or both.")]}
            )
        return attrs


class InboundMessageSerializer(serializers.Serializer[Any]):
    organization = serializers.SlugField(required=False, help_text="Required for agent keys.")
    phone = serializers.CharField(validators=[ascii_digits_validator, phone_validator])
    message = serializers.CharField(max_length=4000)
    name = serializers.CharField(required=False, max_length=200, help_text="For a new client.")


class ReceiptSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(
        choices=[
            Message.Status.SENT,
            Message.Status.DELIVERED,
            Message.Status.READ,
            Message.Status.FAILED,
        ]
    )


class ReceiptResultSerializer(serializers.Serializer[Any]):
    applied = serializers.BooleanField()
    message = MessageSerializer()


# --- assistance ---------------------------------------------------------------------------


class AssistanceCreateSerializer(serializers.Serializer[Any]):
    topic = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    phone = serializers.CharField(required=False, validators=[phone_validator])
    client = serializers.UUIDField(required=False, help_text="The client's uuid.")
    help_desk = serializers.UUIDField(required=False)
    organization = serializers.SlugField(
        required=False, help_text="Only with an agent key (integration keys have one)."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "phone" in attrs and "client" in attrs:
            raise serializers.ValidationError(
                {"client": [gettext("Give the phone or the client, not both.")]}
            )
        return attrs


class AssistanceCreatedSerializer(AssistanceRequestSerializer):
    """The 202 of `POST /assistance/`: the request, plus the seed's `event` key."""

    event = serializers.UUIDField(
        source="uuid", read_only=True, help_text="The seed's created event id: equal to `id`."
    )


class TopicSerializer(serializers.ModelSerializer[AssistanceTopic]):
    organization: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = AssistanceTopic
        fields = ["id", "organization", "name", "team", "webhook_url", "has_secret", "created_at"]

    def get_has_secret(self, obj: AssistanceTopic) -> bool:
        return bool(obj.webhook_secret)


class TopicWriteSerializer(serializers.Serializer[Any]):
    organization = serializers.SlugField(required=False, help_text="Only with an agent key.")
    name = serializers.SlugField(max_length=49)
    team = serializers.SlugField(required=False, allow_null=True, help_text="Team slug.")
    webhook_url = serializers.URLField(required=False, allow_blank=True, max_length=500)
    webhook_secret = serializers.CharField(
        required=False, allow_blank=True, max_length=200, write_only=True
    )
