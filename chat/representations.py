"""One representation per chat object: the REST body, its OpenAPI schema and the event
payload (services publish `HelpDeskSerializer(desk).data`, ...).

Below the services in the layering (they import it; it imports only models and core), so
an event and the REST object it mirrors cannot drift. Input validation is in
`chat/serializers.py`, beside the API.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from chat.models import (
    AssistanceRequest,
    CannedReply,
    Client,
    HelpDesk,
    HelpDeskNote,
    Message,
)
from core.api import PlainRepresentation
from core.fields import IsoDateTimeField


class ClientSerializer(PlainRepresentation, serializers.ModelSerializer[Client]):
    organization: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = Client
        fields = [
            "uuid",
            # The integer id is what mailings (`client_ids`), notifications and every log
            # line (`client_id=`) use, so an API user can connect the two.
            "id",
            "created_at",
            "updated_at",
            "name",
            "phone",
            "operator_code",
            "tag",
            "timezone",
            "promo_opt_out",
            "organization",
            "channel",
            "email",
            "language",
            "email_promo_opt_out",
        ]


class MessageSerializer(PlainRepresentation, serializers.ModelSerializer[Message]):
    help_desk = serializers.UUIDField(source="help_desk.uuid", read_only=True)
    file = serializers.SerializerMethodField()
    # The agent who wrote an outgoing message (null for a client's message): with several
    # agents in one conversation, "who answered" matters.
    sender: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Message
        fields = [
            "created_at",
            "updated_at",
            "uuid",
            "message",
            "file",
            "type",
            "status",
            "help_desk",
            "sender",
            "file_name",
        ]
        read_only_fields = ["file_name"]

    def get_file(self, obj: Message) -> str | None:
        # The authorized download view (chat/files.py), never the storage's own URL:
        # stable, and worth nothing without a session or key that may read the message.
        return reverse("message-file", kwargs={"uuid": obj.uuid}) if obj.file else None


class TeamRefSerializer(serializers.Serializer[Any]):
    """A team as a help desk names it: {id, name}."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)


_DESK_ORGANIZATION = HelpDesk._meta.get_field("organization")
_CLIENT_ORGANIZATION = Client._meta.get_field("organization")


class HelpDeskSerializer(PlainRepresentation, serializers.ModelSerializer[HelpDesk]):
    client = ClientSerializer(read_only=True)
    last_message = MessageSerializer(read_only=True, allow_null=True)
    organization: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    assignee: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    team = TeamRefSerializer(read_only=True, allow_null=True)
    # The client's channel, flat: the inbox shows it on every row.
    channel = serializers.CharField(source="client.channel", read_only=True)
    # The requesting agent's own count (chat/reads.py); null in events, which go to every
    # agent: the console counts the new_message events of type received itself.
    unread_count = serializers.SerializerMethodField()

    def get_unread_count(self, help_desk: HelpDesk) -> int | None:
        return getattr(help_desk, "agent_unread", None)

    def to_representation(self, instance: HelpDesk) -> dict[str, Any]:
        # The nested last message names its help desk (`help_desk.uuid`): that is this
        # one, so say so instead of letting each row of a list load it again (N+1).
        last = instance.last_message if instance.last_message_id is not None else None
        if last is not None and last.help_desk_id == instance.pk:
            last.help_desk = instance
        # Likewise the client's organization is the desk's: loaded once, not joined twice.
        client = instance.client
        if (
            client.organization_id == instance.organization_id
            and _DESK_ORGANIZATION.is_cached(instance)
            and not _CLIENT_ORGANIZATION.is_cached(client)
        ):
            client.organization = instance.organization
        return super().to_representation(instance)

    class Meta:
        model = HelpDesk
        fields = [
            "created_at",
            "updated_at",
            "uuid",
            "client",
            "last_message",
            "status",
            "assignee",
            "unread_count",
            "last_activity_at",
            "organization",
            "team",
            "snoozed_until",
            "channel",
        ]


class AssistanceRequestSerializer(serializers.Serializer[AssistanceRequest]):
    """An assistance request: the REST object and the `assistance_requested` event
    payload (strings only, msgpack-safe). Services build the event with
    `AssistanceRequestSerializer(request).data` (this module imports no view)."""

    id = serializers.UUIDField(source="uuid", read_only=True)
    organization = serializers.CharField(source="organization.slug", read_only=True)
    topic = serializers.CharField(source="topic.name", read_only=True)
    team = serializers.CharField(source="topic.team.slug", read_only=True, allow_null=True)
    description = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=AssistanceRequest.Status.choices, read_only=True)
    client = serializers.UUIDField(source="client.uuid", read_only=True, allow_null=True)
    help_desk = serializers.UUIDField(source="help_desk.uuid", read_only=True, allow_null=True)
    assignee = serializers.CharField(source="assignee.username", read_only=True, allow_null=True)
    accepted_by = serializers.CharField(
        source="accepted_by.username", read_only=True, allow_null=True
    )
    created_at = IsoDateTimeField()
    routed_at = IsoDateTimeField(allow_null=True)
    accepted_at = IsoDateTimeField(allow_null=True)


# --- the console (issue 13) -----------------------------------------------------------------


class UserRefSerializer(serializers.Serializer[Any]):
    """A person as the console shows them: {id, username, name}."""

    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    name = serializers.SerializerMethodField()

    def get_name(self, obj: Any) -> str:
        return str(obj.get_full_name() or obj.username)


class NoteSerializer(serializers.ModelSerializer[HelpDeskNote]):
    """A private note: the REST object and the `new_note` event (agents only)."""

    help_desk = serializers.UUIDField(source="help_desk.uuid", read_only=True)
    author = UserRefSerializer(read_only=True, allow_null=True)
    mentions = serializers.ListField(child=serializers.IntegerField(), read_only=True)

    class Meta:
        model = HelpDeskNote
        fields = ["id", "uuid", "help_desk", "text", "author", "mentions", "created_at"]


class CannedReplySerializer(serializers.ModelSerializer[CannedReply]):
    organization: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = CannedReply
        fields = ["id", "organization", "shortcut", "title", "text", "created_at", "updated_at"]
