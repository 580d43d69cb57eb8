"""Validators shared by the apps (clients' phones and time zones, tags)."""

from __future__ import annotations

import mimetypes
import zoneinfo
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

phone_validator = RegexValidator(
    r"^7\d{10}$", _("Phone must be 7XXXXXXXXXX (11 digits starting with 7).")
)
operator_code_validator = RegexValidator(r"^\d{3}$", _("Operator code is 3 digits."))
tag_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$",
    _("Tag: 1-50 letters, digits, '_', '.' or '-', starting with a letter or digit."),
)


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value not in _zones():
        raise ValidationError(
            gettext("%(value)s is not an IANA time zone (e.g. Europe/Moscow).")
            % {"value": repr(value)}
        )


def validate_operator_code_matches(phone: str, operator_code: str) -> None:
    """The operator code is digits 2-4 of the phone (7 [XXX] XXXXXXX)."""
    if len(phone) == 11 and operator_code and phone[1:4] != operator_code:
        raise ValidationError(
            {
                "operator_code": [
                    gettext("Operator code must be %(code)s, digits 2-4 of the phone.")
                    % {"code": phone[1:4]}
                ]
            }
        )


def validate_upload(value: Any) -> None:
    """The limits of every uploaded attachment (an agent's, a widget visitor's): size,
    allowed type, name length, and a name whose extension says the declared type."""
    if value.size > settings.MAX_UPLOAD_SIZE:
        raise ValidationError(
            gettext("File is %(size)d bytes; the limit is %(limit)d.")
            % {"size": value.size, "limit": settings.MAX_UPLOAD_SIZE}
        )
    content_type = getattr(value, "content_type", "") or ""
    if content_type not in settings.ALLOWED_UPLOAD_TYPES:
        raise ValidationError(
            gettext("File type %(type)s is not allowed; allowed: %(allowed)s.")
            % {
                "type": repr(content_type or "unknown"),
                "allowed": ", ".join(settings.ALLOWED_UPLOAD_TYPES),
            }
        )
    # The name becomes a path component on disk (255 bytes at most on most file
    # systems, and Django may add a 8-character suffix): a longer one was a 500.
    if len((value.name or "").encode()) > 200:
        raise ValidationError(gettext("File name is too long (200 bytes at most)."))
    # Files are served with the type their name says, not the declared one:
    # "x.html" declared text/plain would come back as text/html (stored XSS).
    guessed, _ = mimetypes.guess_type(value.name or "")
    if guessed != content_type:
        raise ValidationError(
            gettext("File name %(name)s does not match its type %(type)s.")
            % {"name": repr(value.name), "type": repr(content_type)}
        )
