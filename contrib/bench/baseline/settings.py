"""Minimal Django settings for the baseline: Channels + RedisChannelLayer, no database.

Capacity is raised so that channels-redis does not silently drop group messages
(all consumers of one process share one Redis key, and the default capacity of
100 would drop most of a 1,000-socket fan-out): the baseline is measured at its
best, not at its lossy default.
"""

import os

SECRET_KEY = "bench-baseline"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["daphne", "channels"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "contrib.bench.baseline.urls"
ASGI_APPLICATION = "contrib.bench.baseline.asgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [os.environ["REDIS_URL"]],
            "prefix": "bench-baseline",
            "capacity": 1_000_000,
            "expiry": 60,
        },
    }
}
LOGGING_CONFIG = None
