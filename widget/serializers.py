"""Input validation of the widget's endpoints (beside the API, above the services)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.validators import phone_validator, validate_upload
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
    file = serializers.FileField(required=False, allow_null=True, validators=[validate_upload])


class RatingWriteSerializer(serializers.Serializer[Any]):
    score = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
