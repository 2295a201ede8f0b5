"""The peers Prewarm is compared with (#12): each a bench-only settings module, served by granian.

Every peer answers the product's viewer routes with the product's bytes (bench.peers.check
proves it), the constant-bytes floors through its own stack, /healthz, and POST
/api/bench/write (one write in the server's own process, so its ORM hooks run).
"""
from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

PEERS = ("naive", "naive-orjson", "django-redis", "cacheops", "cachalot", "prewarm", "prewarm-cold")
WSGI = "bench.peers.wsgi:application"  # reads DJANGO_SETTINGS_MODULE from the environment

SETTINGS = {
    "naive": "naive",
    "naive-orjson": "naive_orjson",
    "django-redis": "djredis",
    "cacheops": "cacheops_orm",
    "cachalot": "cachalot_orm",
    "prewarm": "prewarm",
    "prewarm-cold": "prewarm_cold",
}
# The Redis database each caching peer writes to (never the product's: a flush clears it whole).
REDIS_DB = {"django-redis": 11, "cacheops": 12, "cachalot": 13}
PEER_REDIS_ENV = "BENCH_PEER_REDIS_URL"
COLD_SUFFIX = "cold"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "pw"


def redis_db_url(url: str, db: int) -> str:
    """The same Redis server, another database (`redis://host:port/0` -> `.../<db>`)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def _check(peer: str) -> None:
    if peer not in SETTINGS:
        raise ValueError(f"unknown peer {peer!r}; one of {', '.join(PEERS)}")


def server_env(peer: str, env: Mapping[str, str]) -> dict[str, str]:
    """The environment of that peer's server, from the bench env (DATABASE_URL, REDIS_URL with db 0,
    PREWARM_KEY_PREFIX, CELERY_BROKER_URL...): its settings module and its own Redis db or prefix."""
    _check(peer)
    out = dict(env)
    out["DJANGO_SETTINGS_MODULE"] = f"bench.peers.settings.{SETTINGS[peer]}"
    url, prefix = redis_scope(peer, env)
    if peer in REDIS_DB:
        out[PEER_REDIS_ENV] = url
    elif peer == "prewarm-cold":
        out["PREWARM_KEY_PREFIX"] = prefix
    return out


def redis_scope(peer: str, env: Mapping[str, str]) -> tuple[str, str | None]:
    """(redis url with the db the peer writes to, key prefix or None for the whole db): what the
    memory scenario weighs and what a flush of that peer clears. The naive peers write nothing:
    their scope is an empty prefix of their own under the product's db. The caching peers'
    keys in their db also start with the bench prefix (PREWARM_KEY_PREFIX; django-redis and
    cachalot: Django's KEY_PREFIX, cacheops: CACHEOPS_PREFIX), so two runs on different data
    sharing the db never serve each other's bytes; their scope is still the whole db."""
    _check(peer)
    base = env.get("REDIS_URL") or DEFAULT_REDIS_URL
    prefix = env.get("PREWARM_KEY_PREFIX") or DEFAULT_PREFIX
    if peer in REDIS_DB:
        return redis_db_url(base, REDIS_DB[peer]), prefix
    if peer == "prewarm":
        return base, prefix
    if peer == "prewarm-cold":  # idempotent: the cold server's own env gives the same scope
        return base, prefix if prefix.endswith(COLD_SUFFIX) else prefix + COLD_SUFFIX
    return base, f"{prefix}{peer.replace('-', '')}"  # naive, naive-orjson: nothing is ever written


def clear_scope(url: str, prefix: str) -> int:
    """Delete every key of a peer's scope (SCAN + UNLINK); how many went."""
    import redis

    r = redis.Redis.from_url(url)
    gone = 0
    try:
        for key in r.scan_iter(match=f"{prefix}:*", count=10_000):
            gone += r.unlink(key)
    finally:
        r.close()
    return gone
