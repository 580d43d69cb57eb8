"""Prometheus across processes: multiprocess mode, one scrape in the web process.

Counters and histograms are incremented where the work happens: in RQ's forked work
horses (mailing dispatch, sender calls), in daphne, in the cron process. With
`PROMETHEUS_MULTIPROC_DIR` every process writes its values to small mmap files there
and `/metrics` merges them (`MultiProcessCollector`), so the web's `/metrics` shows
what the workers did.

One file per *process identifier*: the pid, except in a forked child (an RQ work
horse), which uses `<parent pid>h`. A worker runs one horse at a time, so its horses
share one file and continue each other's values instead of leaving one file per job
(thousands a day) for every scrape to read.

Collectors computed at scrape time (database gauges) are registered with
`register_scrape_collector`, not on the default registry: that registry also holds
this process's own mmap-backed metrics, which `MultiProcessCollector` already counts.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
from pathlib import Path
from typing import Any

_ORIGIN_PID = os.getpid()
_scrape_collectors: list[Any] = []


def _process_identifier() -> str:
    pid = os.getpid()
    return str(pid) if pid == _ORIGIN_PID else f"{_ORIGIN_PID}h"


def configure(path: Path | str) -> None:
    """Turn multiprocess mode on; call before any metric is created (settings does)."""
    global _ORIGIN_PID
    from prometheus_client import values

    Path(path).mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    _ORIGIN_PID = os.getpid()
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_identifier)


def register_scrape_collector(collector: Any) -> None:
    if collector not in _scrape_collectors:
        _scrape_collectors.append(collector)


_LIVE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)h?\.db$")


def _forget_dead_processes(path: str) -> None:
    """Drop the `live*` gauges of processes that are gone (prometheus_client's
    `mark_process_dead`, done here because a killed process cannot do it itself)."""
    for name in {os.path.basename(f) for f in glob.glob(os.path.join(path, "gauge_live*.db"))}:
        match = _LIVE_FILE.match(name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(path, name))
        except PermissionError:
            pass  # alive, another user's


def scrape() -> bytes:
    """The text exposition of every process's metrics plus the scrape-time gauges."""
    from django.conf import settings
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    path = settings.PROMETHEUS_MULTIPROC_DIR
    if path and os.path.isdir(path):
        _forget_dead_processes(path)
        MultiProcessCollector(registry, path=path)
        for collector in _scrape_collectors:
            registry.register(collector)
        return generate_latest(registry)
    # Multiprocess mode off: this process's registry is the whole story.
    from prometheus_client import REGISTRY

    for collector in _scrape_collectors:
        registry.register(collector)
    return generate_latest(REGISTRY) + generate_latest(registry)
