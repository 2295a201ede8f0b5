"""naive-orjson: the naive peer with orjson.dumps instead of json.dumps (the seed's first fix)."""
from config.settings import *  # noqa: F403

from . import LEAN_MIDDLEWARE, LEAN_URLCONF

MIDDLEWARE = LEAN_MIDDLEWARE
ROOT_URLCONF = LEAN_URLCONF
BENCH_PEER_JSON = "orjson"
