"""Serializer fields shared by the apps' representations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rest_framework import serializers


class IsoDateTimeField(serializers.DateTimeField):
    """Read-only `datetime.isoformat()` (`+00:00`, not DRF's `Z`): the format the
    incident and assistance objects and their events have always had."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value: datetime | None) -> str | None:  # type: ignore[override]
        return value.isoformat() if value is not None else None
