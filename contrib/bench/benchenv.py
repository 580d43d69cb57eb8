"""Environment every benchmark gives the platform processes it starts.

The platform refuses to start without a real SECRET_KEY (core/safe_defaults.py) and
answers /metrics only with METRICS_TOKEN; a benchmark run from a fresh clone has no
`.env`, so it brings its own. The abuse limits (core/ratelimit.py) stay on, so their
Redis round trip is part of what is measured, at rates no benchmark reaches.
"""

from __future__ import annotations

import os
import secrets

METRICS_TOKEN = os.environ.get("METRICS_TOKEN") or secrets.token_urlsafe(24)
UNREACHED = "1000000000/min"


def platform_env() -> dict[str, str]:
    return {
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
        "METRICS_TOKEN": METRICS_TOKEN,
        "API_KEY_RATE": os.environ.get("API_KEY_RATE", UNREACHED),
        "USER_RATE": os.environ.get("USER_RATE", UNREACHED),
        "ANON_RATE": os.environ.get("ANON_RATE", UNREACHED),
    }
