"""What the widget's visitor sees, and what admins see of an inbox.

The visitor's shapes are made from chat's own representations (the REST body and the
event payload agents get), keeping only what is the visitor's to see: the same function
turns a history row and a live event into the same object, so the two cannot drift.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Avg, Count
from rest_framework import serializers

from chat.files import file_link_url
from chat.models import HelpDesk, Message
from widget.models import Visitor, WebInbox


def visitor_message(data: dict[str, Any]) -> dict[str, Any]:
    """A chat message (MessageSerializer's data) as the visitor sees it: no agent-side
    delivery details; the file as a signed, expiring link (the visitor has no session)."""
    file_url = None
    if data.get("file"):
        file_url = file_link_url(Message(uuid=uuid.UUID(str(data["uuid"]))))
    outgoing = data.get("type") == Message.Type.SENT
    return {
        "uuid": str(data["uuid"]),
        "help_desk": str(data["help_desk"]),
        "text": data.get("message", ""),
        "file": file_url,
        "file_name": data.get("file_name") or "",
        "from": "agent" if outgoing else "visitor",
        "agent": data.get("sender") if outgoing else None,
        "status": data.get("status"),
        "created_at": data.get("created_at"),
    }


def visitor_conversation(data: dict[str, Any]) -> dict[str, Any]:
    """A help desk (HelpDeskSerializer's data) as its visitor sees it: its status only;
    never the assignee, team, tags or counts."""
    return {"help_desk": str(data["uuid"]), "status": data.get("status")}


# --- the visitor API's answers, for the OpenAPI schema -----------------------------------
# The dicts above are built by hand because the hub rebuilds one per live event
# (widget/frames.py) and `start` up to 200: a DRF serializer per message there costs
# more than the rest of the request. These serializers describe the same shapes for the
# schema; tests/widget/test_schema.py validates real answers against them, so a key
# added on one side and not the other fails there.


class WidgetMessageSerializer(serializers.Serializer[Any]):
    uuid = serializers.UUIDField()
    help_desk = serializers.UUIDField()
    text = serializers.CharField(allow_blank=True)
    file = serializers.URLField(allow_null=True, help_text="A signed link (FILE_LINK_MAX_AGE).")
    file_name = serializers.CharField(allow_blank=True)
    agent = serializers.CharField(allow_null=True, help_text="The replying agent's username.")
    status = serializers.ChoiceField(Message.Status.choices)
    created_at = serializers.DateTimeField()

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        # `from` is a Python keyword: it cannot be a class attribute.
        fields["from"] = serializers.ChoiceField([("visitor", "visitor"), ("agent", "agent")])
        return fields


class WidgetConversationSerializer(serializers.Serializer[Any]):
    help_desk = serializers.UUIDField()
    status = serializers.ChoiceField(HelpDesk.Status.choices)


class WidgetPrechatSerializer(serializers.Serializer[Any]):
    name = serializers.ChoiceField(WebInbox.Field.choices)
    email = serializers.ChoiceField(WebInbox.Field.choices)
    phone = serializers.ChoiceField(WebInbox.Field.choices)


class WidgetConfigSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    greeting = serializers.CharField(allow_blank=True)
    away_message = serializers.CharField(allow_blank=True)
    language = serializers.CharField(allow_blank=True)
    online = serializers.BooleanField(help_text="Within business hours and an agent available.")
    prechat = WidgetPrechatSerializer()


class WidgetContactSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(allow_blank=True)
    email = serializers.CharField(allow_blank=True)
    phone = serializers.CharField(allow_blank=True)


class WidgetStartSerializer(serializers.Serializer[Any]):
    visitor_token = serializers.CharField(help_text="Send it as X-Visitor-Token.")
    visitor = serializers.UUIDField()
    verified = serializers.BooleanField()
    contact = WidgetContactSerializer()
    conversation = WidgetConversationSerializer(allow_null=True)
    messages = WidgetMessageSerializer(many=True, help_text="The latest 200, oldest first.")
    seen = serializers.UUIDField(
        allow_null=True, help_text="The visitor's last message an agent has read."
    )
    last_event_id = serializers.IntegerField(help_text="Resume the socket from here.")
    config = WidgetConfigSerializer()


class WidgetReadSerializer(serializers.Serializer[Any]):
    read = serializers.IntegerField(help_text="How many agents' messages became read.")


class WidgetRatingSerializer(serializers.Serializer[Any]):
    score = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(allow_blank=True)


class WebInboxSerializer(serializers.ModelSerializer[WebInbox]):
    organization: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = WebInbox
        fields = [
            "id",
            "organization",
            "name",
            "token",
            "allowed_origins",
            "greeting",
            "away_message",
            "timezone",
            "business_hours",
            "prechat_name",
            "prechat_email",
            "prechat_phone",
            "language",
            "created_at",
            "updated_at",
        ]


class WebInboxWithSecretSerializer(WebInboxSerializer):
    """Only in the answer to a create or a rotation: the secret is shown once."""

    class Meta(WebInboxSerializer.Meta):
        fields = [*WebInboxSerializer.Meta.fields, "secret"]


class VisitorContextSerializer(serializers.ModelSerializer[Visitor]):
    inbox = serializers.CharField(source="inbox.name", read_only=True)
    verified = serializers.SerializerMethodField()

    class Meta:
        model = Visitor
        fields = [
            "uuid",
            "inbox",
            "verified",
            "user_id",
            "phone",
            "page_url",
            "user_agent",
            "utc_offset",
            "created_at",
            "last_seen_at",
        ]

    def get_verified(self, obj: Visitor) -> bool:
        return bool(obj.user_id)


def rating_statistics(ratings: Any) -> dict[str, Any]:
    """count, average and the count per score (1-5) of a Rating queryset."""
    totals = ratings.aggregate(count=Count("id"), average=Avg("score"))
    rows = ratings.order_by().values("score").annotate(n=Count("id")).values_list("score", "n")
    per_score = dict(rows)
    average = totals["average"]
    return {
        "count": totals["count"],
        "average": round(float(average), 2) if average is not None else None,
        "distribution": {str(s): per_score.get(s, 0) for s in range(1, 6)},
    }
