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
from chat.models import Message
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
