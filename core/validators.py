"""Validators shared by the apps (clients' phones and time zones, tags)."""

from __future__ import annotations

import mimetypes
import zoneinfo
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

phone_validator = RegexValidator(
    r"^7\d{10}$", "Phone must be 7XXXXXXXXXX (11 digits starting with 7)."
)
operator_code_validator = RegexValidator(r"^\d{3}$", "Operator code is 3 digits.")
tag_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$",
    "Tag: 1-50 letters, digits, '_', '.' or '-', starting with a letter or digit.",
)


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value not in _zones():
        raise ValidationError(f"{value!r} is not an IANA time zone (e.g. Europe/Moscow).")


def validate_operator_code_matches(phone: str, operator_code: str) -> None:
    """The operator code is digits 2-4 of the phone (7 [XXX] XXXXXXX)."""
    if len(phone) == 11 and operator_code and phone[1:4] != operator_code:
        raise ValidationError(
            {"operator_code": [f"Operator code must be {phone[1:4]}, digits 2-4 of the phone."]}
        )


def validate_upload(value: Any) -> None:
    """The limits of every uploaded attachment (an agent's, a widget visitor's): size,
    allowed type, name length, and a name whose extension says the declared type."""
    if value.size > settings.MAX_UPLOAD_SIZE:
        raise ValidationError(
            f"File is {value.size} bytes; the limit is {settings.MAX_UPLOAD_SIZE}."
        )
    content_type = getattr(value, "content_type", "") or ""
    if content_type not in settings.ALLOWED_UPLOAD_TYPES:
        raise ValidationError(
            f"File type {content_type or 'unknown'!r} is not allowed; "
            f"allowed: {', '.join(settings.ALLOWED_UPLOAD_TYPES)}."
        )
    # The name becomes a path component on disk (255 bytes at most on most file
    # systems, and Django may add a 8-character suffix): a longer one was a 500.
    if len((value.name or "").encode()) > 200:
        raise ValidationError("File name is too long (200 bytes at most).")
    # Files are served with the type their name says, not the declared one:
    # "x.html" declared text/plain would come back as text/html (stored XSS).
    guessed, _ = mimetypes.guess_type(value.name or "")
    if guessed != content_type:
        raise ValidationError(f"File name {value.name!r} does not match its type {content_type!r}.")
