"""One raw Redis client per process for the cache (bytes in, bytes out)."""
import functools

import redis
from django.conf import settings

# Short timeouts: a view falls back to Postgres rather than hang on a sick Redis.
SOCKET_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0


@functools.cache
def client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
    )


def reset() -> None:
    """Forget the cached client (tests that change REDIS_URL, forked processes)."""
    client.cache_clear()
