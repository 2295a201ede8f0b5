"""One settings module per peer (bench.peers.PEERS); the parts several of them share."""
import os

from bench.peers import PEER_REDIS_ENV, REDIS_DB, redis_db_url

# An API needs no sessions, CSRF, auth or messages: what a team serving this JSON would keep.
LEAN_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
LEAN_URLCONF = "bench.peers.urls"


def peer_redis_url(peer: str) -> str:
    """The peer's own Redis database: BENCH_PEER_REDIS_URL (bench.peers.server_env), else
    REDIS_URL's server with the peer's db."""
    return os.environ.get(PEER_REDIS_ENV) or redis_db_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), REDIS_DB[peer])


def cacheops_prefix(query) -> str:
    """CACHEOPS_PREFIX of the cacheops peer: the bench's key prefix, on every key it writes."""
    from django.conf import settings

    return f"{settings.PREWARM_KEY_PREFIX}:"
