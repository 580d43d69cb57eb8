"""Prometheus gauges computed from the database at scrape time (`/metrics`).

The dispatch counters and histograms (`mailing_deliveries_total`,
`mailing_dispatch_batch_seconds`, ...) are counted in the worker processes and reach
the web's `/metrics` through Prometheus multiprocess files (`core.metrics`); these
gauges add the current state of the database at each scrape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from core.metrics import register_scrape_collector
from core.models import Delivery
from mailing.models import Mailing

_registered = False


class MailingCollector:
    def collect(self) -> Iterator[GaugeMetricFamily]:
        messages = GaugeMetricFamily(
            "mailing_messages", "Mailing messages by delivery status", labels=["status"]
        )
        mailings = GaugeMetricFamily("mailings", "Mailings by status", labels=["status"])
        try:
            for status, n in (
                Delivery.objects.filter(source=Delivery.Source.MAILING)
                .values_list("status")
                .annotate(n=Count("pk"))
                .order_by()
            ):
                messages.add_metric([status], n)
            for status, n in (
                Mailing.objects.values_list("status").annotate(n=Count("pk")).order_by()
            ):
                mailings.add_metric([status], n)
        except Exception:  # a scrape must not fail because the database is busy
            return
        yield messages
        yield mailings

    def describe(self) -> list[Any]:
        return []  # no collection at registration time


def register() -> None:
    global _registered
    if not _registered:
        register_scrape_collector(MailingCollector())
        _registered = True
