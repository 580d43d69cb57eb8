"""Input validation for the console's endpoints (issue 13): workflow, inbox filters,
notes, canned replies, search. Beside the API, above the services (representations,
which are also the event payloads, are in chat/representations.py)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chat.representations import ClientSerializer, MessageSerializer
from chat.workflow import STATUS_INPUTS, status_normalize
from core.models import slug_validator


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}]})
class UserRefField(serializers.Field[Any, Any, Any, Any]):
    """A user id (the console's pickers) or a username (the seed's form)."""

    default_error_messages = {"invalid": "Give a user id or a username."}

    def to_internal_value(self, data: Any) -> int | str:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, int):
            return data
        if isinstance(data, str) and 0 < len(data) <= 150:
            return int(data) if data.isascii() and data.isdigit() else data
        self.fail("invalid")
        raise AssertionError  # unreachable: fail() raises

    def to_representation(self, value: Any) -> Any:
        return value


class HelpDeskWorkflowSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(
        choices=STATUS_INPUTS,
        required=False,
        help_text="open, pending, snoozed (with snoozed_until) or resolved; `closed` is a "
        "deprecated alias of resolved.",
    )
    snoozed_until = serializers.DateTimeField(
        required=False, help_text="Required with status=snoozed; in the future."
    )
    assignee = UserRefField(
        required=False, allow_null=True, help_text="A member's user id (or username), or null."
    )
    team = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="A team id, or null."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        snoozing = status_normalize(attrs.get("status", "")) == "snoozed"
        until = attrs.get("snoozed_until")
        if snoozing and until is None:
            raise serializers.ValidationError(
                {"snoozed_until": [gettext("Required when status is snoozed.")]}
            )
        if until is not None and not snoozing:
            raise serializers.ValidationError(
                {"snoozed_until": [gettext("Only with status snoozed.")]}
            )
        if until is not None and until <= timezone.now():
            raise serializers.ValidationError(
                {"snoozed_until": [gettext("Must be in the future.")]}
            )
        return attrs


class InboxFilterSerializer(serializers.Serializer[Any]):
    view = serializers.ChoiceField(choices=["mine", "unassigned", "all"], required=False)
    status = serializers.ChoiceField(choices=STATUS_INPUTS, required=False)
    team = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)


class NoteCreateSerializer(serializers.Serializer[Any]):
    text = serializers.CharField(max_length=4000, help_text="`@username` mentions a member.")


class CannedReplyWriteSerializer(serializers.Serializer[Any]):
    organization = serializers.SlugField(required=False, help_text="Required on create.")
    shortcut = serializers.CharField(
        max_length=49,
        validators=[slug_validator],
        help_text="Typed after `/` in the reply box; unique in the organization.",
    )
    title = serializers.CharField(max_length=200)
    text = serializers.CharField(
        max_length=4000,
        help_text="Plain text; {{ name }}, {{ phone }}, {{ email }}, {{ tag }} are filled "
        "by the console from the conversation's client.",
    )


# --- the customer context (responses only: plain values the read builds) -----------------


class ContextHelpDeskSerializer(serializers.Serializer[Any]):
    uuid = serializers.UUIDField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_activity_at = serializers.DateTimeField()
    last_message_text = serializers.CharField()


class ContextMailingSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    transport = serializers.CharField()
    sent_at = serializers.DateTimeField(allow_null=True)
    message_status = serializers.CharField()


class ContextIncidentSerializer(serializers.Serializer[Any]):
    uuid = serializers.UUIDField()
    rule_code = serializers.CharField()
    rule_name = serializers.CharField()
    status = serializers.CharField()
    started_at = serializers.DateTimeField()
    warned_at = serializers.DateTimeField()


class ClientContextSerializer(serializers.Serializer[Any]):
    client = ClientSerializer()
    help_desks = ContextHelpDeskSerializer(many=True)
    mailings = ContextMailingSerializer(many=True)
    incidents = ContextIncidentSerializer(many=True)


class SearchQuerySerializer(serializers.Serializer[Any]):
    q = serializers.CharField(min_length=2, max_length=200, trim_whitespace=True)


class SearchMessageSerializer(serializers.Serializer[Any]):
    message = MessageSerializer()
    help_desk = serializers.UUIDField(source="message.help_desk.uuid")
    client = serializers.SerializerMethodField()
    snippet = serializers.CharField(help_text="Plain text around the match (no markup).")

    def get_client(self, hit: dict[str, Any]) -> dict[str, str]:
        client = hit["message"].help_desk.client
        return {"uuid": str(client.uuid), "name": client.name}


class SearchResultSerializer(serializers.Serializer[Any]):
    clients = ClientSerializer(many=True)
    messages = SearchMessageSerializer(many=True)
