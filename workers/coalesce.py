"""Coalescing by dirty markers: an id with a rebuild already queued is not queued again.

A task clears its ids' markers *before* reading Postgres, so an event that lands while a
rebuild runs queues one more rebuild: the last event is never dropped (unlike celery-once).
The signal path skips ids with a marker; the relay, which is the delivery guarantee, sends
regardless, so a producer that died between claiming and publishing costs no event (its
outbox row is still there). A marker older than STALE_MS is claimable again, and the
sweeper in workers.tasks re-queues such markers, so a stuck one only costs latency.
"""
from __future__ import annotations

import time
from collections.abc import Iterable

from core import keys
from core.redis_conn import client

STALE_MS = 60_000

_CLAIM = """
local now, stale, out = tonumber(ARGV[1]), tonumber(ARGV[2]), {}
for i = 3, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if (not cur) or (now - tonumber(cur) > stale) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[1])
    out[#out + 1] = ARGV[i]
  end
end
return out
"""


def now_ms() -> int:
    return int(time.time() * 1000)


def claim(kind: str, ids: Iterable[int], *, stale_ms: int = STALE_MS) -> list[int]:
    """Mark ids dirty; return those that were not already queued (they need a task)."""
    ids = sorted(set(ids))
    if not ids:
        return []
    script = client().register_script(_CLAIM)
    fresh = script(keys=[keys.dirty_key(kind)], args=[now_ms(), stale_ms, *ids])
    return [int(x) for x in fresh]


def mark(kind: str, ids: Iterable[int]) -> list[int]:
    """Mark ids queued unconditionally (the relay always sends); returns them sorted."""
    ids = sorted(set(ids))
    if ids:
        client().hset(keys.dirty_key(kind), mapping={i: now_ms() for i in ids})
    return ids


def release(kind: str, ids: Iterable[int]) -> None:
    ids = list(ids)
    if ids:
        client().hdel(keys.dirty_key(kind), *ids)


def stale(kind: str, *, stale_ms: int = STALE_MS) -> list[int]:
    cutoff = now_ms() - stale_ms
    return [int(k) for k, v in client().hgetall(keys.dirty_key(kind)).items() if int(v) < cutoff]
