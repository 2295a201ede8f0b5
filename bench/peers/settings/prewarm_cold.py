"""prewarm-cold: the product with every viewer read a miss (own prefix, no in-process layer, keys deleted first)."""
from django.core.exceptions import ImproperlyConfigured

from bench.peers import COLD_SUFFIX
from bench.settings import *  # noqa: F403
from bench.settings import MIDDLEWARE as _BENCH_MIDDLEWARE
from bench.settings import PREWARM_KEY_PREFIX as _PREFIX

# Its middleware deletes entries before every read: never under the warm peer's prefix.
if not _PREFIX.endswith(COLD_SUFFIX):
    raise ImproperlyConfigured(f"prewarm-cold needs its own key prefix ending in {COLD_SUFFIX!r} "
                               f"(bench.peers.server_env sets it), got {_PREFIX!r}")
ROOT_URLCONF = "bench.peers.urls_prewarm"
MIDDLEWARE = ["bench.peers.middleware.ColdFastPath" if m == "bench.middleware.BenchFastPath" else m
              for m in _BENCH_MIDDLEWARE]
# The in-process layer off: a LocalCache of 0 entries drops whatever it is given at once.
PREWARM_API_LOCAL_ENTRIES = 0
PREWARM_API_LOCAL_PROFILES = False
BENCH_PEER_PRODUCT = True
