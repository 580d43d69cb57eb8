"""core/asgi.py prepares the web process's garbage collector (BENCHMARKS.md, issue 14).

Startup's objects (every module and the URLconf's views) are frozen out of the cyclic
collector's walks: a full collection that walked them all paused a web process ~100 ms,
seen in the widget benchmark's p99.
"""

from __future__ import annotations

import gc


def test_startup_objects_are_frozen() -> None:
    import core.asgi  # noqa: F401  (what daphne imports)

    assert gc.get_freeze_count() > 10_000
