"""Input validation of the widget's endpoints (beside the API, above the services)."""

from __future__ import annotations

import mimetypes
from typing import Any

from django.conf import settings
from rest_framework import serializers

from core.validators import phone_validator
from widget.models import WebInbox


class WebInboxWriteSerializer(serializers.Serializer[WebInbox]):
    organization = serializers.CharField(required=False, max_length=49)
    name = serializers.CharField(max_length=200)
    allowed_origins = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=50, required=False
    )
    greeting = serializers.CharField(max_length=500, required=False, allow_blank=True)
    away_message = serializers.CharField(max_length=500, required=False, allow_blank=True)
    timezone = serializers.CharField(max_length=64, required=False)
    business_hours = serializers.JSONField(required=False)
    prechat_name = serializers.ChoiceField(WebInbox.Field.choices, required=False)
    prechat_email = serializers.ChoiceField(WebInbox.Field.choices, required=False)
    prechat_phone = serializers.ChoiceField(WebInbox.Field.choices, required=False)
    language = serializers.CharField(max_length=10, required=False, allow_blank=True)


class RotateSerializer(serializers.Serializer[Any]):
    secret = serializers.BooleanField(default=True)
    token = serializers.BooleanField(default=False)


class StartSerializer(serializers.Serializer[Any]):
    token = serializers.CharField(required=False, allow_blank=True, max_length=400)
    user_id = serializers.CharField(required=False, allow_blank=True, max_length=200)
    user_hash = serializers.CharField(required=False, allow_blank=True, max_length=128)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    email = serializers.EmailField(required=False, allow_blank=True)
    phone = serializers.CharField(
        required=False, allow_blank=True, max_length=11, validators=[phone_validator]
    )
    page_url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    utc_offset = serializers.IntegerField(required=False, min_value=-840, max_value=840)


class SendSerializer(serializers.Serializer[Any]):
    text = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")
    file = serializers.FileField(required=False, allow_null=True)

    def validate_file(self, value: Any) -> Any:
        # The limits of agents' attachments (a copy of chat.serializers.SendMessageSerializer's:
        # other apps may not import chat's serializers).
        if value is None:
            return value
        if value.size > settings.MAX_UPLOAD_SIZE:
            raise serializers.ValidationError(
                f"File is {value.size} bytes; the limit is {settings.MAX_UPLOAD_SIZE}."
            )
        content_type = getattr(value, "content_type", "") or ""
        if content_type not in settings.ALLOWED_UPLOAD_TYPES:
            raise serializers.ValidationError(
                f"File type {content_type or 'unknown'!r} is not allowed; "
                f"allowed: {', '.join(settings.ALLOWED_UPLOAD_TYPES)}."
            )
        if len((value.name or "").encode()) > 200:
            raise serializers.ValidationError("File name is too long (200 bytes at most).")
        # Files are served with the type their name says: "x.html" declared text/plain
        # would come back as text/html (stored XSS).
        guessed, _ = mimetypes.guess_type(value.name or "")
        if guessed != content_type:
            raise serializers.ValidationError(
                f"File name {value.name!r} does not match its type {content_type!r}."
            )
        return value


class RatingWriteSerializer(serializers.Serializer[Any]):
    score = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
