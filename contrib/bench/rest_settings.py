"""Settings of the web processes `rest_ratio.py` starts: the platform's own, plus a bench-only
URL (`/bench/bare/`, a bare Django view) and, with BENCH_PROFILE=<file>, a sampling profiler.

Only the benchmark names this module (DJANGO_SETTINGS_MODULE=contrib.bench.rest_settings):
the product never serves the bare view.
"""

import os

from core.settings import *  # noqa: F403

ROOT_URLCONF = "contrib.bench.rest_urls"

if os.environ.get("BENCH_PROFILE"):
    from contrib.bench.rest_profile import start as _start_profile

    _start_profile(os.environ["BENCH_PROFILE"])
