"""cacheops: django-cacheops 7.2 caching every core queryset behind the naive views, as its README recommends."""
from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS as _PRODUCT_APPS

from . import LEAN_MIDDLEWARE, LEAN_URLCONF, peer_redis_url

MIDDLEWARE = LEAN_MIDDLEWARE
ROOT_URLCONF = LEAN_URLCONF
INSTALLED_APPS = [*_PRODUCT_APPS, "cacheops"]
# README: a separate Redis database is highly recommended; restrict non-empty ops by app
# ('app_name.*', never '*.*'); 'all' is get, fetch, count, aggregate and exists.
CACHEOPS_REDIS = peer_redis_url("cacheops")
CACHEOPS = {"core.*": {"ops": "all", "timeout": 60 * 60}}
CACHEOPS_DEGRADE_ON_FAILURE = True
# README, "Sharing redis instance": a prefix on every key, so runs on other data sharing the db
# never read each other's cached querysets (cacheops keys them by SQL, not by database).
CACHEOPS_PREFIX = "bench.peers.settings.cacheops_prefix"
# README caveat 3: a select_related object's update does not invalidate; use prefetch_related.
BENCH_PEER_PROFILE_RELATED = "prefetch"
BENCH_PEER_JSON = "json"
