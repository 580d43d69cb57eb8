"""Safe defaults: a production process refuses to start on a development secret.

`SECRET_KEY` signs sessions, CSRF tokens and links; the default in core/settings.py
exists only so that `manage.py` commands, the type checker and the test runner work in
a fresh clone. Every long-running process of the platform (the ASGI application that
daphne serves, the RQ worker, the cron scheduler) calls `require_secret_key()` first:
with `DEBUG` off it raises `ImproperlyConfigured` when the key is unset, empty or a
value published in this repository. `python contrib/generate_env.py` writes a random
one (the README's `bash contrib/start.sh` runs it first).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Values anyone can read in this repository: the settings default and .env.example's.
KNOWN_INSECURE_SECRET_KEYS = frozenset(
    {"", "insecure-dev-key-run-contrib-generate-env", "change-me"}
)


def secret_key_is_insecure(key: str) -> bool:
    # "django-insecure-" is what `startproject` writes into a settings file.
    return key.strip() in KNOWN_INSECURE_SECRET_KEYS or key.startswith("django-insecure-")


def require_secret_key() -> None:
    """Raise ImproperlyConfigured unless DEBUG is on or SECRET_KEY is a real secret."""
    if settings.DEBUG:
        return
    try:
        key = settings.SECRET_KEY
    except ImproperlyConfigured:  # Django's own refusal of an empty key, less helpful
        key = ""
    if not secret_key_is_insecure(key):
        return
    raise ImproperlyConfigured(
        "SECRET_KEY is not set (or is a published default) and DEBUG is off: refusing to "
        "start. Run `python contrib/generate_env.py` to write a .env with a random "
        "SECRET_KEY (and METRICS_TOKEN), or set SECRET_KEY in the environment."
    )
