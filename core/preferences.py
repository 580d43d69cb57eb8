"""An agent's own settings (issue 13): console language, time zone (issue 16: the times
the console and the server show this agent) and attention (desktop notifications,
sound). One row per person, created on the first write; absent means the defaults, so
reading never writes."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core.logging import get_logger
from core.models import AgentPreference

log = get_logger(__name__)

FIELDS = ("language", "time_zone", "notify_desktop", "notify_sound")


def agent_preference_get(*, user: Any) -> AgentPreference:
    """The saved row, or an unsaved one with the defaults."""
    return AgentPreference.objects.filter(user=user).first() or AgentPreference(user=user)


@transaction.atomic
def agent_preference_update(*, user: Any, data: dict[str, Any]) -> AgentPreference:
    preference, _ = AgentPreference.objects.select_for_update().get_or_create(user=user)
    for field in FIELDS:
        if field in data:
            setattr(preference, field, data[field])
    preference.save()
    log.info("agent_preference_updated", user_id=user.pk, fields=sorted(data))
    return preference
