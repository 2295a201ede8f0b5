"""cachalot: django-cachalot 2.9 with its defaults (every ORM query cached, per-table invalidation)."""
from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS as _PRODUCT_APPS
from config.settings import PREWARM_KEY_PREFIX

from . import LEAN_MIDDLEWARE, LEAN_URLCONF, peer_redis_url

MIDDLEWARE = LEAN_MIDDLEWARE
ROOT_URLCONF = LEAN_URLCONF
INSTALLED_APPS = [*_PRODUCT_APPS, "cachalot"]
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": peer_redis_url("cachalot"),
        "KEY_PREFIX": PREWARM_KEY_PREFIX,  # runs on other data sharing the db never read each other's keys
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }
}
BENCH_PEER_JSON = "json"
