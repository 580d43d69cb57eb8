"""The signed-webhook channel adapter: one POST to a public address, as a `SendResult`.

The receiver's answer is classified like the sender API's (`core.sender.status_outcome`);
a call that raised like the sender's too (`core.sender.error_result`: a lost answer is
`answer_lost`). The address policy is `core.outbound.post_public_url`: checked at send
time, connected to the address checked, no redirect followed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import httpx

from core.logging import get_logger
from core.outbound import OutboundError, post_public_url
from core.sender import SendResult, error_result, status_outcome

log = get_logger(__name__)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`: the timestamp is
    signed with the body, so a receiver that rejects old timestamps stops replays."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def webhook_post(
    *,
    url: str,
    body: bytes,
    headers: dict[str, str],
    secret: str,
    signature_header: str,
    timeout: float,
    log_fields: dict[str, Any],
) -> SendResult:
    """POST `body` (JSON), signed with `secret` when there is one. No transaction open."""
    headers = {"Content-Type": "application/json", **headers}
    if secret:
        headers[signature_header] = sign(secret, body, int(time.time()))
    start = time.perf_counter()
    try:
        response = post_public_url(url, content=body, headers=headers, timeout=timeout)
    except OutboundError as exc:
        # Refused before any connection (or a redirect not followed): no retry helps
        # until the URL or its DNS changes; an unresolved name is retried.
        duration = int((time.perf_counter() - start) * 1000)
        verdict = "refused" if exc.permanent else "not sent"
        log.warning("webhook_refused", **log_fields, reason=exc.reason)
        return SendResult(
            "permanent" if exc.permanent else "transient",
            exc.status_code,
            duration,
            f"{verdict}: {exc.reason}"[:500],
        )
    except httpx.HTTPError as exc:
        return error_result(exc, start)
    duration = int((time.perf_counter() - start) * 1000)
    outcome = status_outcome(response.status_code)
    error = "" if outcome == "ok" else f"HTTP {response.status_code}"
    return SendResult(outcome, response.status_code, duration, error)
