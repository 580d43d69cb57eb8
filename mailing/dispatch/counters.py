"""The dispatch's Prometheus counters and histograms (worker processes)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DELIVERIES = Counter(
    "mailing_deliveries_total",
    "Mailing delivery attempts by result (sent, retry, failed, expired, deferred)",
    ["result"],
)
BATCH_SECONDS = Histogram(
    "mailing_dispatch_batch_seconds",
    "Duration of one dispatch batch (claim, send, record)",
    ["phase"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "mailing_dispatch_batch_size",
    "Messages claimed per dispatch batch",
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2000),
)
BREAKER_TRIPS = Counter("mailing_breaker_trips_total", "Times the sender circuit breaker opened")
RECLAIMED = Counter("mailing_reclaimed_total", "Stale `sending` deliveries put back to pending")
# Every series exists (at 0) from the start: a missing series is not a zero in PromQL.
for _result in ("sent", "retry", "failed", "expired", "deferred"):
    DELIVERIES.labels(_result)
for _phase in ("claim", "send", "record", "total"):
    BATCH_SECONDS.labels(_phase)
