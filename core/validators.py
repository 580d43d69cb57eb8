"""Validators shared by the apps (clients' phones and time zones, tags)."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

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
