"""Client of the external sender API (seed 004, the "probe" service).

    POST {SENDER_URL}/v1/send/{msgId}   Authorization: Bearer <JWT>
    {"id": msgId, "phone": 7XXXXXXXXXX, "text": "..."}  ->  200 {"code": 0, "message": "OK"}

Every answer is classified once, here: `ok`, `transient` (timeout, connection
error, 408/429, 5xx, or a 200 whose body is not the documented one: retried) or
`permanent` (any other 4xx: final).

A transient result also says whether the answer was *lost* (`answer_lost`): the
request went out (it may have reached the provider) but no HTTP answer came back
(read timeout, connection dropped after sending). A connect error or a pool timeout
is not lost: nothing was sent. What a lost answer leads to is one setting,
`SENDER_RETRY_ON_LOST_ANSWER` (`core.outbox.retry_decision`).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Literal

import httpx
from django.conf import settings
from prometheus_client import Counter, Histogram

Outcome = Literal["ok", "transient", "permanent"]

SENDER_REQUESTS = Counter("sender_requests_total", "Calls to the external sender", ["outcome"])
SENDER_LATENCY = Histogram(
    "sender_request_seconds",
    "Latency of calls to the external sender",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    status_code: int | None
    duration_ms: int
    error: str = ""
    # The request was sent but its answer never came: the provider may have taken it.
    answer_lost: bool = False


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.SENDER_TOKEN}"}


def _url(msg_id: int) -> str:
    return f"{settings.SENDER_URL.rstrip('/')}/v1/send/{msg_id}"


def _body(msg_id: int, phone: int, text: str) -> dict[str, object]:
    return {"id": msg_id, "phone": phone, "text": text}


def classify(status_code: int, body: bytes, duration_ms: int) -> SendResult:
    if status_code == 200:
        try:
            import json

            data = json.loads(body)
            if isinstance(data, dict) and data.get("code") == 0:
                return SendResult("ok", 200, duration_ms)
        except ValueError:
            pass
        return SendResult("transient", 200, duration_ms, f"unexpected body: {body[:120]!r}")
    if status_outcome(status_code) == "transient":
        return SendResult("transient", status_code, duration_ms, f"HTTP {status_code}")
    return SendResult("permanent", status_code, duration_ms, f"HTTP {status_code}: {body[:200]!r}")


def status_outcome(status_code: int) -> Outcome:
    """The one classification of an HTTP status, for every outbox channel (sender API,
    webhooks): 2xx ok; 408, 425, 429 and 5xx transient (retried); any other permanent."""
    if 200 <= status_code < 300:
        return "ok"
    if status_code in (408, 425, 429) or status_code >= 500:
        return "transient"
    return "permanent"


def _observe(result: SendResult) -> SendResult:
    SENDER_REQUESTS.labels(result.outcome).inc()
    SENDER_LATENCY.observe(result.duration_ms / 1000)
    return result


# httpx errors raised before any byte of the request left: the provider cannot have it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def error_result(exc: Exception, start: float) -> SendResult:
    """A call that raised (httpx): transient; `answer_lost` unless nothing was sent."""
    duration = int((time.perf_counter() - start) * 1000)
    return SendResult(
        "transient",
        None,
        duration,
        f"{type(exc).__name__}: {exc}"[:500],
        answer_lost=not isinstance(exc, _NOT_SENT),
    )


NO_PHONE_ERROR = "no phone: an SMS is never sent without one"


def no_phone_result() -> SendResult:
    """What an SMS to a delivery without a phone gets, with no call made: permanent (the
    row cannot gain a phone later; `core.Delivery.phone` is frozen when it is created)."""
    return SendResult("permanent", None, 0, NO_PHONE_ERROR)


def send_sync(
    *, msg_id: int, phone: int | None, text: str, client: httpx.Client | None = None
) -> SendResult:
    if phone is None:
        return no_phone_result()
    start = time.perf_counter()
    own = client is None
    http = client or httpx.Client(timeout=settings.SENDER_TIMEOUT)
    try:
        response = http.post(_url(msg_id), json=_body(msg_id, phone, text), headers=_headers())
        duration = int((time.perf_counter() - start) * 1000)
        return _observe(classify(response.status_code, response.content, duration))
    except httpx.HTTPError as exc:
        return _observe(error_result(exc, start))
    finally:
        if own:
            http.close()


def backoff_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based).

    Exponential with "equal jitter": half fixed, half random, so retries of many
    messages that failed together do not hit the sender together again.
    """
    # The exponent is capped: a message retried until a far deadline counts thousands of
    # attempts, and 2.0 ** 1024 overflows.
    exponent = min(max(attempt - 1, 0), 40)
    ceiling = min(settings.SENDER_BACKOFF_MAX, settings.SENDER_BACKOFF_BASE * 2.0**exponent)
    return ceiling / 2 + random.uniform(0, ceiling / 2)
