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
            # redis-py 8 made a pool refuse its 101st connection (MaxConnectionsError:
            # a 5,000-socket reconnect storm group_adds far more at once) and gave every
            # read a 5 s timeout, the length of channels-redis's own blocking pop (its
            # receive loop then died with TimeoutError, 1011). Both as channels-redis
            # expects them, as redis-py before 8 had them.
            "hosts": [
                {
                    "address": os.environ["REDIS_URL"],
                    "max_connections": 100_000,
                    "socket_timeout": None,
                }
            ],
            "prefix": "bench-baseline",
            "capacity": 1_000_000,
            "expiry": 60,
        },
    }
}
LOGGING_CONFIG = None
