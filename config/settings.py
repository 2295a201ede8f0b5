"""Django settings, read from the environment (12-factor) with safe development defaults."""
import hashlib
import hmac
import os

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config import web
from core.checks import DEV_SECRET_KEY
from core.keys import PREFIX as KEY_PREFIX


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None


DEBUG = env_bool("PREWARM_DEBUG", False)
# Production is the default; development mode (PREWARM_DEV) allows the dev tooling's conveniences.
DEV_MODE = env_bool("PREWARM_DEV", False)
# The built-in secret is public, so only DEBUG (a developer's own machine, never a server
# others reach) may fall back to it: with PREWARM_DEV alone anyone could mint an ops token.
# `make run`/`make test` (tools/devstack.py) and tests/settings.py generate a key instead.
SECRET_KEY = os.environ.get("SECRET_KEY") or (DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY or (SECRET_KEY == DEV_SECRET_KEY and not DEBUG):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set (the built-in development secret is accepted only with PREWARM_DEBUG=1)"
    )

# Development answers to any Host; production only to those named (the loopback names by
# default, for a health check from inside the container). The API's fast path checks it too.
DEFAULT_HOSTS = "*" if DEV_MODE or DEBUG else "localhost,127.0.0.1,[::1]"
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("PREWARM_ALLOWED_HOSTS", DEFAULT_HOSTS).split(",") if h.strip()]

# HTTPS, for a deployment behind TLS. Off by default so that a plain-HTTP stack (compose on
# localhost) works; `check --deploy` names each one left off. Behind a proxy that ends TLS,
# PREWARM_TRUST_X_FORWARDED_PROTO=1 lets its X-Forwarded-Proto say a request was HTTPS
# (only when the proxy sets that header itself, whatever the client sent).
SECURE_SSL_REDIRECT = env_bool("PREWARM_SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # liveness probes come over plain HTTP
if env_bool("PREWARM_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("PREWARM_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("PREWARM_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("PREWARM_HSTS_PRELOAD", False)
# The admin's session and CSRF cookies only over HTTPS: on with the redirect unless said.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("PREWARM_SECURE_COOKIES", SECURE_SSL_REDIRECT)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_celery_beat",
    "core",
    "workers",
    "api",
    "ops",
    "schedules",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/prewarm")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=600, conn_health_checks=True)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def redis_cache_url(url: str, cluster: bool) -> tuple[str, bool]:
    """(a plain redis:// URL of one node, whether the cache is a Redis Cluster). A cluster is
    named by `redis+cluster://` (`rediss+cluster://`) or PREWARM_REDIS_CLUSTER=1; any node of
    it will do, the clients find the others. A cluster has database 0 only."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("redis+cluster", "rediss+cluster"):
        url, cluster = scheme.partition("+")[0] + sep + rest, True
    if cluster:
        _, _, path = url.partition("://")[2].partition("/")
        if path.split("?")[0] not in ("", "0"):
            raise ImproperlyConfigured(f"REDIS_URL: a Redis Cluster has database 0 only, got /{path}")
    return url, cluster


REDIS_URL, PREWARM_REDIS_CLUSTER = redis_cache_url(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), env_bool("PREWARM_REDIS_CLUSTER", False)
)
# Every cache key starts with this prefix; the schema version in core.keys follows it. Checked
# here: a '*' or '?' in it would make the verifier's SCAN and seed_demo --reset's UNLINK reach
# other applications' keys, and a brace would put every key in one Redis Cluster slot.
PREWARM_KEY_PREFIX = os.environ.get("PREWARM_KEY_PREFIX") or "pw"
if not KEY_PREFIX.fullmatch(PREWARM_KEY_PREFIX):
    raise ImproperlyConfigured(
        f"PREWARM_KEY_PREFIX must be 1-64 letters, digits, '_', '.' or '-' (not starting with one of the last three),"
        f" got {PREWARM_KEY_PREFIX!r}"
    )

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL
if PREWARM_REDIS_CLUSTER and not os.environ.get("CELERY_BROKER_URL"):
    # kombu's Redis transport speaks to one server: a cluster node would answer MOVED for
    # the queues' keys. The broker is a server of its own (RabbitMQ, or a plain Redis).
    raise ImproperlyConfigured("with a Redis Cluster cache, set CELERY_BROKER_URL (amqp:// or a plain redis://)")
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Acknowledge a task after it ran, so a worker that dies mid-task leaves it to the broker
# (the markers' sweeper heals a lost run either way: workers.coalesce).
CELERY_TASK_ACKS_LATE = env_bool("PREWARM_ACKS_LATE", True)
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("PREWARM_PREFETCH", 4)
CELERY_TASK_TIME_LIMIT = env_int("PREWARM_TASK_TIME_LIMIT", 300)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("PREWARM_TASK_SOFT_TIME_LIMIT", 240)
CELERY_TASK_DEFAULT_QUEUE = "invalidate"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"

# Token lifetime for `manage.py api_token` unless --ttl is given (seconds; an ops token's is
# capped at a day, a viewer's at 30: api.tokens).
PREWARM_TOKEN_TTL = env_int("PREWARM_TOKEN_TTL", 24 * 3600)
# API tokens have their own signing key, so rotating it revokes every token and nothing else
# (sessions keep SECRET_KEY); by default derived from SECRET_KEY under a salt of its own.
PREWARM_TOKEN_KEY = os.environ.get("PREWARM_TOKEN_KEY") or hmac.new(
    SECRET_KEY.encode(), b"prewarm.api.token-key", hashlib.sha256
).hexdigest()
# Tokens carry the generation they were issued under; one lower than this is refused, so
# raising it revokes every token issued before (viewers' and ops') without a new key.
PREWARM_TOKEN_GENERATION = env_int("PREWARM_TOKEN_GENERATION", 1)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = str(web.static_root())  # the web process serves it from the same place

PREWARM_LOG_LEVEL = os.environ.get("PREWARM_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": PREWARM_LOG_LEVEL},
    # A worker at INFO logs each task twice: "received" (before it runs, on the path of every
    # change) and "succeeded in" (after). Keep the second, which names the task and its time;
    # PREWARM_LOG_LEVEL=DEBUG shows both.
    "loggers": {"celery.worker.strategy": {"level": "DEBUG" if PREWARM_LOG_LEVEL == "DEBUG" else "WARNING"}},
}

# Local days of programme guide kept warm after today (yesterday and today always are).
PREWARM_EPG_DAYS_AHEAD = env_int("PREWARM_EPG_DAYS_AHEAD", 2)

# cache_verify and the rolling verification: a difference is drift only if it is still there
# this many seconds later (a write committed a moment ago may not have reached Redis yet).
PREWARM_VERIFY_GRACE_SECONDS = env_float("PREWARM_VERIFY_GRACE_SECONDS", 5.0)

# Warm-up jobs (ops.jobs): a chunk runs well under a second, so a worker holding one this
# long has died and beat's prewarm.warmup_resume runs it again; a chunk sent but not started
# this long was lost with its message (a broker restart).
PREWARM_WARMUP_LEASE_SECONDS = env_float("PREWARM_WARMUP_LEASE_SECONDS", 60.0)
PREWARM_WARMUP_SENT_STALE_SECONDS = env_float("PREWARM_WARMUP_SENT_STALE_SECONDS", 120.0)
# A worker that consumes only the warm-up queue lowers its CPU priority by this much (its
# pool children inherit it), so a warm-up on shared cores yields to invalidations.
PREWARM_WARMUP_NICE = env_int("PREWARM_WARMUP_NICE", 10)
# Beat's prewarm.verify_slice covers the whole profile id range once in this many hours.
PREWARM_VERIFY_CYCLE_HOURS = env_float("PREWARM_VERIFY_CYCLE_HOURS", 24.0)

# Rebuild tasks allowed to wait unstarted before producers hold new changes back (the relay
# keeps the rows in the outbox, web processes leave theirs to it) and send them together in
# the next, larger task: batching that starts only when the workers fall behind. 0 turns it
# off. 1 beat 2 at every rate from 1,000/s to 7,000/s (p50 20-30% lower, the same at 200/s)
# with the Procfile's 2 worker children: bench/reports/pipeline-20261202T164658Z.md against
# pipeline-20261202T163858Z.md. With 1, a web process leaves its change to the relay as
# soon as one task waits: every deployment runs a relay (the Procfile's `relay` line).
# workers.coalesce, workers.relay.
PREWARM_WAITING_TASKS = env_int("PREWARM_WAITING_TASKS", 1)

# Redis broker: a message taken by a worker that dies unacknowledged is re-delivered after
# this many seconds (RabbitMQ re-delivers at once). Keep it above the task time limit.
PREWARM_BROKER_VISIBILITY_TIMEOUT = env_int("PREWARM_BROKER_VISIBILITY_TIMEOUT", 600)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": PREWARM_BROKER_VISIBILITY_TIMEOUT,
    # kombu looks for overdue messages every interval x throttle seconds (100 s by default);
    # a cheap index range read, so look every few seconds instead.
    "unacked_restore_interval": max(1, min(10, PREWARM_BROKER_VISIBILITY_TIMEOUT // 3)),
    "unacked_restore_throttle": 1,
}
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "workers.broker:Transport"  # kombu's, one Redis client per channel
if CELERY_BROKER_URL.startswith(("amqp", "pyamqp")):
    # Wait for RabbitMQ's confirm before the relay deletes an outbox row.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}

# API
# api.middleware.ApiFastPath serves the API routes before the admin's middleware runs.
MIDDLEWARE = ["api.middleware.ApiFastPath", *MIDDLEWARE]
# Per web process, the in-process cache of hot entries: at most this many, this many MB.
PREWARM_API_LOCAL_ENTRIES = env_int("PREWARM_API_LOCAL_ENTRIES", 100_000)
PREWARM_API_LOCAL_MB = env_int("PREWARM_API_LOCAL_MB", 256)
# Keep viewer profiles in that cache too (exact by tracking); off = one Redis read per request.
PREWARM_API_LOCAL_PROFILES = env_bool("PREWARM_API_LOCAL_PROFILES", True)
# /readyz and /metrics answers are kept this long per web process (anonymous callers must not
# make every call open Postgres, Redis and broker connections): api.brief.
PREWARM_PROBE_CACHE_SECONDS = env_float("PREWARM_PROBE_CACHE_SECONDS", 1.0)
