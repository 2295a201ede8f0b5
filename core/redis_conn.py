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


UNLINK_BATCH = 10_000


def unlink_prefix(prefix: str) -> int:
    """Delete every key under `prefix:` (SCAN and UNLINK in batches, never KEYS or FLUSHDB:
    other prefixes and the broker may share the database); returns how many went."""
    r, gone, batch = client(), 0, []
    for key in r.scan_iter(match=f"{prefix}:*", count=UNLINK_BATCH):
        batch.append(key)
        if len(batch) >= UNLINK_BATCH:
            gone += r.unlink(*batch)
            batch.clear()
    if batch:
        gone += r.unlink(*batch)
    return gone
