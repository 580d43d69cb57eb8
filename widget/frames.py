"""Turn the organization's event frames into what one visitor may see.

A visitor socket gets only: its conversations' messages (`message`), their status
(`conversation`, `conversation_deleted`), how far the agents have read the visitor's
messages (`read`: the last one read, never which agent) and the agents' `typing` in them,
each with the event's own id. Everything else in the organization's log (other
conversations, notes, assignment, mailings, incidents) never leaves as a visitor frame:
the event types below are the whole list, and their payloads are rebuilt field by field
(widget/representations.py), not filtered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from widget.representations import visitor_conversation, visitor_message

# The frames start with their type (core/events.py builds them): a prefix test skips
# everything else without parsing it.
_PREFIXES = tuple(
    f'{{"type": "{t}"'
    for t in (
        "new_message",
        "update_message",
        "update_helpdesk",
        "delete_helpdesk",
        "help_desk_read",
        "typing",
    )
)


@dataclass(frozen=True, slots=True)
class VisitorEvent:
    help_desk: str
    client: str | None  # known from help desk events; messages name only the desk
    text: str  # the visitor frame, JSON


def relevant(raw: str) -> bool:
    return raw.startswith(_PREFIXES)


def translate(event_id: int, raw: str) -> VisitorEvent | None:
    """The visitor frame for one organization frame, or None if no visitor sees it."""
    try:
        outer = json.loads(raw)
        kind = outer["type"]
        data: dict[str, Any] = json.loads(outer["data"])
        return _translate(event_id, kind, data)
    except (ValueError, KeyError, TypeError):
        return None


def _frame(kind: str, event_id: int, data: dict[str, Any]) -> str:
    frame: dict[str, Any] = {"type": kind}
    if event_id:
        frame["id"] = event_id
    frame["data"] = data
    return json.dumps(frame, separators=(",", ":"))


def _translate(event_id: int, kind: str, data: dict[str, Any]) -> VisitorEvent | None:
    if kind in ("new_message", "update_message"):
        desk = str(data["help_desk"])
        return VisitorEvent(desk, None, _frame("message", event_id, visitor_message(data)))
    if kind == "update_helpdesk":
        desk, client = str(data["uuid"]), str(data["client"]["uuid"])
        return VisitorEvent(
            desk, client, _frame("conversation", event_id, visitor_conversation(data))
        )
    if kind == "delete_helpdesk":
        desk, client = str(data["uuid"]), str(data["client"])
        return VisitorEvent(
            desk, client, _frame("conversation_deleted", event_id, {"help_desk": desk})
        )
    if kind == "help_desk_read" and data.get("message"):
        # An agent read a web desk (chat/reads.py): which message, not who read it.
        desk = str(data["help_desk"])
        return VisitorEvent(
            desk,
            None,
            _frame("read", event_id, {"help_desk": desk, "message": str(data["message"])}),
        )
    if kind == "typing" and "agent" in data:
        # Only agents' typing: the visitor's own (data["visitor"]) is for the agents.
        desk = str(data["help_desk"])
        return VisitorEvent(
            desk, None, _frame("typing", 0, {"help_desk": desk, "agent": data["agent"]})
        )
    return None
