"""naive: ORM queries and json.dumps on every request (the seed's starting point)."""
from config.settings import *  # noqa: F403

from . import LEAN_MIDDLEWARE, LEAN_URLCONF

MIDDLEWARE = LEAN_MIDDLEWARE
ROOT_URLCONF = LEAN_URLCONF
BENCH_PEER_JSON = "json"
