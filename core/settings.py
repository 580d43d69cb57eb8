"""Settings: the only place that reads the environment.

Every variable is documented in `.env.example`. With no configuration at all the
platform runs on its embedded default: SQLite (WAL) and an embedded Valkey
server started by `python manage.py embedded_redis` (Procfile `redis`).
"""

from __future__ import annotations

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

(BASE_DIR / "var").mkdir(exist_ok=True)  # test databases and collected static files

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Local state (the embedded Valkey's files, uploads, demo credentials); gitignored.
# Another VAR_DIR runs a second instance from the same checkout without sharing any.
VAR_DIR = env.path("VAR_DIR", default=BASE_DIR / "var")
Path(VAR_DIR).mkdir(parents=True, exist_ok=True)

SECRET_KEY = env.str("SECRET_KEY", default="insecure-dev-key-run-contrib-generate-env")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from /static/, no CDN (issue 9)
    "channels",
    "core",
    "chat",
    "mailing",
    "escalation",
    "widget",  # the website chat widget (issue 14, docs/widget.md)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.security_headers.ContentSecurityPolicyMiddleware",
    "core.bounded_input.RejectNulMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Accept-Language (or the django_language cookie) picks the language; an agent's saved
    # preference overrides it once the user is known (core.i18n, after authentication).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.i18n.AgentLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.logging.RequestLogMiddleware",
    # Last: a view's Redis/database outage error becomes a 503, not a 500 (issue #10).
    "core.errors.DependencyUnavailableMiddleware",
]

ROOT_URLCONF = "core.urls"
ASGI_APPLICATION = "core.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at
    # BEGIN so two writers queue on `timeout` instead of failing with "database is
    # locked" when a read transaction tries to upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_TIMEOUT", default=20),
    }
    # Each request reuses a connection an earlier one closed (core/dbpool.py):
    # no open, schema parse and WAL teardown per request. SQLITE_POOL_SIZE=0: off.
    SQLITE_POOL_SIZE = env.int("SQLITE_POOL_SIZE", default=8)
    if SQLITE_POOL_SIZE > 0:
        from core.dbpool import PooledSQLiteConnection, forget_sqlite_after_fork

        DATABASES["default"]["OPTIONS"]["factory"] = PooledSQLiteConnection
        os.register_at_fork(after_in_child=forget_sqlite_after_fork)
    # Per process, so two test runs on one machine never share (and destroy) a database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-{os.getpid()}.sqlite3")}
else:
    # --- PostgreSQL connection pool, per process (issue 10 item 5) ------------------------
    # Under ASGI each request's sync code runs in a thread of its own, and with
    # CONN_MAX_AGE every such thread kept its own connection: one web process under 16
    # concurrent clients opened connections past max_connections and answered 500s ("too
    # many clients already"). Django's psycopg pool (psycopg_pool) shares DB_POOL_MIN to
    # DB_POOL_MAX connections among a process's threads; a request waits up to
    # DB_POOL_TIMEOUT seconds for a free one (then fails like a database outage).
    # Budget: (web processes + worker processes + cron) x DB_POOL_MAX must stay below
    # PostgreSQL's max_connections minus what admin tools need. A work horse (one job) uses
    # one connection. DB_POOL_MAX=0 turns the pool off: CONN_MAX_AGE applies, as before.
    DB_POOL_MIN = env.int("DB_POOL_MIN", default=1)
    DB_POOL_MAX = env.int("DB_POOL_MAX", default=10)
    DB_POOL_TIMEOUT = env.float("DB_POOL_TIMEOUT", default=10.0)
    if DB_POOL_MAX > 0:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(DB_POOL_MIN, DB_POOL_MAX),
            "max_size": DB_POOL_MAX,
            "timeout": DB_POOL_TIMEOUT,
        }
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django refuses persistent + pooled
        # A forked child (an RQ work horse) must not use its parent's pooled sockets.
        from core.dbpool import forget_pools_after_fork

        os.register_at_fork(after_in_child=forget_pools_after_fork)
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: RQ, the event log, rate limits ---------------------------------------------
EMBEDDED_REDIS_PORT = env.int("EMBEDDED_REDIS_PORT", default=6390)
EMBEDDED_REDIS = not env.str("REDIS_URL", default="")
REDIS_URL = env.str("REDIS_URL", default="") or f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"
EMBEDDED_REDIS_DIR = Path(VAR_DIR) / "valkey"

# No CHANNEL_LAYERS: websockets get their events from the per-organization event log
# through one hub per process (core/realtime.py), not from a channel layer; Channels'
# consumers then have no layer at all. Why not channels-redis: docs/realtime.md.

# Realtime event log: how many events per organization a reconnecting client can
# replay before it is told to resync, and how many frames one websocket may have
# queued before it is dropped (the client then resumes with last_event_id).
EVENT_RETENTION = env.int("EVENT_RETENTION", default=10_000)
WS_SEND_QUEUE = env.int("WS_SEND_QUEUE", default=2_000)

# --- Websocket access and limits (chat/ws_auth.py, chat/consumers.py) ------------------
# Seconds between two re-validations of every open websocket's principal in a web
# process: a revoked key, a deactivated user or a removed membership is closed within it.
WS_AUTH_RECHECK_SECONDS = env.float("WS_AUTH_RECHECK_SECONDS", default=5.0)
# Connects per key / session user (per client IP without valid credentials), all web
# processes together; over it: close 4429. "<count>/<s|min|h|day>", 0 = no limit.
WS_CONNECT_RATE = env.str("WS_CONNECT_RATE", default="60/min")
# Client frames per socket; over it frames are dropped, twice over it closes (4429).
WS_FRAME_RATE = env.str("WS_FRAME_RATE", default="120/min")
# At most one `typing` broadcast per help desk per socket in this many seconds.
WS_TYPING_INTERVAL = env.float("WS_TYPING_INTERVAL", default=2.0)

# --- Jobs -----------------------------------------------------------------------------
RQ_DEFAULT_TIMEOUT = env.int("RQ_DEFAULT_TIMEOUT", default=300)

# --- Metrics --------------------------------------------------------------------------
# Prometheus multiprocess mode: every process (web, RQ workers and their work horses,
# cron) writes its counters here and the web's /metrics merges them. Must be local to
# the host and emptied when the whole host's processes restart (not one by one).
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="") or str(
    Path(VAR_DIR) / "prometheus"
)
from core.metrics import configure as _configure_metrics  # noqa: E402

_configure_metrics(PROMETHEUS_MULTIPROC_DIR)

# --- External sender (seed 004 "probe" API) -------------------------------------------
SENDER_URL = env.str("SENDER_URL", default="http://127.0.0.1:8020")
SENDER_TOKEN = env.str("SENDER_TOKEN", default="")
SENDER_TIMEOUT = env.float("SENDER_TIMEOUT", default=10.0)
SENDER_MAX_ATTEMPTS = env.int("SENDER_MAX_ATTEMPTS", default=6)
SENDER_BACKOFF_BASE = env.float("SENDER_BACKOFF_BASE", default=2.0)
SENDER_BACKOFF_MAX = env.float("SENDER_BACKOFF_MAX", default=300.0)
SENDER_CONCURRENCY = env.int("SENDER_CONCURRENCY", default=200)
# Used only by the simulator in contrib/ to check the JWT the platform sends.
SENDER_JWT_SECRET = env.str("SENDER_JWT_SECRET", default="")

# --- Retries until the deadline (issue 10 item 4; core/outbox retry_decision) -----
# A message with a deadline (a mailing's end, a notification's TTL) is retried with the
# capped backoff until that deadline; SENDER_MAX_ATTEMPTS bounds only messages without
# one (chat). A "lost answer" is a call whose request went out but whose answer never
# came (timeout or connection dropped after sending): true = retry with the same msgId
# (the provider's idempotency key: no duplicate if it honours it); false = mark the
# message failed and never call again for it (at most once, even if the provider did
# deliver it). docs/mailing.md, "Lost answers".
SENDER_RETRY_ON_LOST_ANSWER = env.bool("SENDER_RETRY_ON_LOST_ANSWER", default=True)

# --- Uploads --------------------------------------------------------------------------
MEDIA_ROOT = env.path("MEDIA_ROOT", default=Path(VAR_DIR) / "media")
MEDIA_URL = "/media/"
# Where clients reach this service: files sent over SMS travel as absolute links.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
MAX_UPLOAD_SIZE = env.int("MAX_UPLOAD_SIZE", default=10 * 1024 * 1024)
ALLOWED_UPLOAD_TYPES = env.list(
    "ALLOWED_UPLOAD_TYPES",
    default=[
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "audio/mpeg",
        "audio/ogg",
    ],
)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_SIZE + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- Customer files (chat/files.py; docs/security.md "Customer files") ------------------
# Seconds a signed file link (sent to the client in the SMS text) works; checked when the
# link is used, so lowering it also shortens links already sent.
FILE_LINK_MAX_AGE = env.int("FILE_LINK_MAX_AGE", default=7 * 24 * 3600)
# The sweeper removes a file under MEDIA_ROOT/messages/ that no message points to once it
# is older than this many seconds (younger: maybe an upload not yet committed).
FILE_ORPHAN_GRACE = env.int("FILE_ORPHAN_GRACE", default=3600)

# --- Website widget (widget/, docs/widget.md) -----------------------------------------
# Seconds a visitor token (kept by the widget in the visitor's browser) stays valid; every
# start renews it, so only a visitor away this long starts over (a verified one does not).
WIDGET_VISITOR_TOKEN_MAX_AGE = env.int("WIDGET_VISITOR_TOKEN_MAX_AGE", default=90 * 24 * 3600)
# Public widget requests and socket connects per visitor, and per client address.
WIDGET_VISITOR_RATE = env.str("WIDGET_VISITOR_RATE", default="60/min")
WIDGET_IP_RATE = env.str("WIDGET_IP_RATE", default="600/min")
# Seconds a visitor socket may stay open before its first (auth) frame; then 4401.
WIDGET_AUTH_TIMEOUT = env.float("WIDGET_AUTH_TIMEOUT", default=10.0)

# --- Static, i18n ---------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
LANGUAGE_CODE = "en"
# Languages a person can read the platform in (docs: README "Languages"); translations in
# locale/<ll>/LC_MESSAGES/*.po, compiled by `manage.py compilemessages`.
LANGUAGES = [("en", "English"), ("ru", "Русский"), ("pt-br", "Português (Brasil)")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# Django's hashers unless PASSWORD_HASHERS (comma-separated dotted paths, the first one
# hashes new passwords) says otherwise. The test suite names a fast one first: Django's
# default costs ~0.5 s of CPU per password, and nearly every test creates an agent.
PASSWORD_HASHERS = env.list(
    "PASSWORD_HASHERS",
    default=[
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
        "django.contrib.auth.hashers.ScryptPasswordHasher",
    ],
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

# --- Rate limits (core/ratelimit.py, core/throttles.py; docs/security.md) ---------------
# "<count>/<s|min|h|day>" per fixed window, counted in Redis and shared by every web
# process; "0/min" switches one off. Over a limit: 429 with Retry-After. The API counts
# per API key, else per logged-in user (the console), else per client address.
API_KEY_RATE = env.str("API_KEY_RATE", default="600/min")
USER_RATE = env.str("USER_RATE", default="600/min")
ANON_RATE = env.str("ANON_RATE", default="60/min")
# Monitoring posts (/api/triggers/, /api/alertmanager/) per key, fast path and Django
# view together, instead of API_KEY_RATE: generous, since alerts arrive in bursts.
TRIGGER_RATE = env.str("TRIGGER_RATE", default="6000/min")
# Signed file links (GET /api/files/<token>/, no account) per client address, instead of
# ANON_RATE: a mailing's recipients open theirs together, many behind one carrier NAT.
FILE_LINK_RATE = env.str("FILE_LINK_RATE", default="600/min")
# Failed logins (console and admin) per username and, separately, per client address.
LOGIN_RATE = env.str("LOGIN_RATE", default="10/min")
# Seconds the counters wait for Redis before letting the request through (fail open).
RATELIMIT_REDIS_TIMEOUT = env.float("RATELIMIT_REDIS_TIMEOUT", default=0.5)

# --- Email (daily reports) --------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="platform@localhost")
# SMTP (EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend): mailings reuse one
# connection per sending thread for many messages (mailing/dispatch/email.py).
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
# Concurrent SMTP connections per mailing lane (each in its own thread).
MAILING_EMAIL_CONNECTIONS = env.int("MAILING_EMAIL_CONNECTIONS", default=4)
# Seconds an unsubscribe link stays valid (RFC 8058 links live in old mailboxes: long).
EMAIL_UNSUBSCRIBE_MAX_AGE = env.int("EMAIL_UNSUBSCRIBE_MAX_AGE", default=365 * 24 * 3600)

# --- API: DRF and drf-spectacular (core/settings_api.py) -----------------------------------
from core.settings_api import REST_FRAMEWORK, SPECTACULAR_SETTINGS  # noqa: E402, F401

# --- Logging --------------------------------------------------------------------------
LOG_FORMAT = env.str("LOG_FORMAT", default="console" if DEBUG else "json")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING_CONFIG = None
from core.logging import configure_logging  # noqa: E402

configure_logging(fmt=LOG_FORMAT, level=LOG_LEVEL)

# --- Assistance (chat, issue #4): outbound topic webhooks ------------------------------
ASSISTANCE_WEBHOOK_TIMEOUT = env.float("ASSISTANCE_WEBHOOK_TIMEOUT", default=5.0)
ASSISTANCE_WEBHOOK_MAX_ATTEMPTS = env.int("ASSISTANCE_WEBHOOK_MAX_ATTEMPTS", default=6)

# --- Outbound calls to tenant-chosen URLs (core/outbound.py, issue 9 item 2) -------------
# Webhooks go to public addresses only. True also allows loopback, private and CGNAT
# targets: local development and tests ONLY, never in production (an SSRF hole into
# Redis, the database, internal services). `check --deploy` warns while it is on.
OUTBOUND_ALLOW_PRIVATE = env.bool("OUTBOUND_ALLOW_PRIVATE", default=False)

# --- mailing ----------------------------------------------------------------------------
# Dispatch: messages claimed per batch, concurrent HTTP calls per lane, parallel lanes
# (jobs) per mailing, seconds one job runs before handing over, probe batch size while
# the breaker is half-open, and when a batch trips the breaker (share of transient
# failures, and at least this many).
MAILING_BATCH_SIZE = env.int("MAILING_BATCH_SIZE", default=500)
MAILING_CONCURRENCY = env.int("MAILING_CONCURRENCY", default=SENDER_CONCURRENCY)
MAILING_LANES = env.int("MAILING_LANES", default=2)
MAILING_SLICE_SECONDS = env.float("MAILING_SLICE_SECONDS", default=30.0)
MAILING_PROBE_SIZE = env.int("MAILING_PROBE_SIZE", default=5)
MAILING_BREAKER_RATIO = env.float("MAILING_BREAKER_RATIO", default=0.5)
MAILING_BREAKER_MIN_FAILURES = env.int("MAILING_BREAKER_MIN_FAILURES", default=5)
# Client rows turned into messages per transaction when a mailing starts.
MAILING_MATERIALIZE_CHUNK = env.int("MAILING_MATERIALIZE_CHUNK", default=2000)
# Seconds between two mailing_progress events of one mailing.
MAILING_PROGRESS_INTERVAL = env.float("MAILING_PROGRESS_INTERVAL", default=1.0)
# How long a notification (POST /api/notifications/) may still be delivered.
MAILING_NOTIFICATION_TTL = env.int("MAILING_NOTIFICATION_TTL", default=3600)
# Mailings of at least this priority (1-10) use the `mailing_high` queue, which workers
# take first; lower-priority dispatch lanes give their worker back when it has jobs.
MAILING_HIGH_PRIORITY = env.int("MAILING_HIGH_PRIORITY", default=8)
# No call to the sender starts in the last this many seconds before a message's end
# time: the provider accepts when it answers, so a later call could land after the end.
MAILING_END_GUARD = env.float("MAILING_END_GUARD", default=1.0)

# --- Escalation (issue #4): the trigger evaluator --------------------------------------
# Seconds of quiet before the evaluation job returns, and the most it runs at once.
ESCALATION_EVALUATOR_IDLE = env.float("ESCALATION_EVALUATOR_IDLE", default=0.3)
ESCALATION_EVALUATOR_MAX_RUN = env.float("ESCALATION_EVALUATOR_MAX_RUN", default=2.0)
# Monitoring posts answered in front of Django (escalation/fastpath.py), and how long a
# web process trusts an integration key it has looked up: a revoked key stops working
# within this many seconds.
TRIGGER_FASTPATH = env.bool("TRIGGER_FASTPATH", default=True)
TRIGGER_AUTH_CACHE_TTL = env.float("TRIGGER_AUTH_CACHE_TTL", default=2.0)

# --- Outages and restarts (issue #10 items 1-3; core/resilience.py, docs/operations.md) --
# Every process retries a Redis or database outage forever, with a backoff doubling
# from OUTAGE_RETRY_MIN to OUTAGE_RETRY_MAX seconds (the most a process lags behind
# the dependency's return).
OUTAGE_RETRY_MIN = env.float("OUTAGE_RETRY_MIN", default=0.2)
OUTAGE_RETRY_MAX = env.float("OUTAGE_RETRY_MAX", default=2.0)
# Seconds a Redis connect or command may take before it fails (an unreachable host
# answers 503 instead of hanging the request); RQ raises it for its blocking dequeue.
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=5.0)
# How often the worker's scheduler moves due enqueue_at jobs to their queue: the most a
# scheduled job (mailing start, escalation check, retry) starts after its time.
RQ_SCHEDULER_POLL_INTERVAL = env.float("RQ_SCHEDULER_POLL_INTERVAL", default=0.2)
# Seconds between the worker's maintenance runs (registry cleanup, and taking over the
# scheduler when its holder died); RQ's default is 600.
RQ_MAINTENANCE_INTERVAL = env.int("RQ_MAINTENANCE_INTERVAL", default=10)
# A scheduler lock whose holder has not heartbeated for this long is taken over at start.
RQ_SCHEDULER_STALE_AFTER = env.float("RQ_SCHEDULER_STALE_AFTER", default=30.0)
# On SIGTERM the embedded Valkey waits up to this long for the other processes to
# disconnect (release their locks, register their death) before it stops.
EMBEDDED_REDIS_STOP_GRACE = env.float("EMBEDDED_REDIS_STOP_GRACE", default=5.0)

# --- Sweeper grace (issue #10 chaos test; core/outbox deliveries_overdue) ----------
# A pending delivery whose job was lost (Redis down at commit time) is re-enqueued by the
# sweeper once it is this many seconds overdue (shorter only re-enqueues slow jobs: the
# claim token still sends once, but it is wasted work).
SWEEP_GRACE = env.float("SWEEP_GRACE", default=60.0)

# --- Safe defaults, CSP, bounded input (issue 9 items 6-8; docs/security.md) ------------
# Production HTTPS settings (docs/security.md, "Safe defaults"); the defaults suit
# plain-HTTP development. Behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER to
# the header it sets, e.g. HTTP_X_FORWARDED_PROTO,https.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
_proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header) if len(_proxy_ssl_header) == 2 else None
# Bearer token a Prometheus scraper presents to /metrics; unset = /metrics answers 403.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Sent on every response (core/security_headers.py, the trigger fast path too). Styles
# allow 'unsafe-inline' for Swagger UI (its React components set style attributes);
# scripts come only from this origin.
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default=(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self' ws: wss:; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
    ),
)
# Largest request body, in bytes, refused from Content-Length before it is read (and
# while a chunked body arrives): an upload of MAX_UPLOAD_SIZE plus its form's overhead.
MAX_REQUEST_BODY = env.int("MAX_REQUEST_BODY", default=DATA_UPLOAD_MAX_MEMORY_SIZE)
# Deepest nesting of lists/objects a JSON body may have.
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=32)
