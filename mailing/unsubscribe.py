"""Signed per-client unsubscribe links (RFC 8058 one-click).

The token is `django.core.signing` over the client's id with its own salt (a token for
anything else signed with SECRET_KEY is refused here) and a timestamp, valid for
`EMAIL_UNSUBSCRIBE_MAX_AGE`. It names the client, not the mailing: following any of a
client's links opts that client out of promotional email.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing

_SALT = "mailing.unsubscribe.v1"


def unsubscribe_token(client_id: int) -> str:
    return signing.TimestampSigner(salt=_SALT).sign(str(int(client_id)))


def unsubscribe_url(client_id: int) -> str:
    return f"{settings.PUBLIC_BASE_URL}/u/{unsubscribe_token(client_id)}/"


def unsubscribe_client_id(token: str) -> int | None:
    """The client a token was made for; None if forged, altered or too old."""
    try:
        value = signing.TimestampSigner(salt=_SALT).unsign(
            token, max_age=settings.EMAIL_UNSUBSCRIBE_MAX_AGE
        )
    except signing.BadSignature:  # SignatureExpired is one
        return None
    return int(value) if value.isdigit() else None
