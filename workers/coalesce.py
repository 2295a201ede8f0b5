"""Coalescing by markers: an id whose rebuild is queued (and not started) is not queued again.

A marker is `c<token>:<ms>` while a producer publishes (claimed) and `q<ms>` once the
broker accepted the task (queued). A task clears its ids' markers *before* reading
Postgres, so an event that lands while a rebuild runs queues one more: the last event is
never dropped (unlike celery-once), and a burst costs one or two rebuilds.

The signal path skips ids that are claimed or queued. The relay, the delivery guarantee,
skips only *queued* ids: a claim may belong to a producer that died before publishing, so
the relay takes it over and sends. A marker older than STALE_MS counts as absent, and the
sweeper in workers.tasks re-queues such markers, so a stuck one only costs latency.
"""
from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable

from core import keys
from core.redis_conn import client

STALE_MS = 60_000

_CLAIM = """
local now, stale, token, trust = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1'
local out = {}
for i = 5, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local skip = false
  if cur and now - tonumber(string.match(cur, '(%d+)$')) <= stale then
    local state = string.sub(cur, 1, 1)
    skip = state == 'q' or (trust and state == 'c')
  end
  if not skip then
    redis.call('HSET', KEYS[1], ARGV[i], 'c' .. token .. ':' .. ARGV[1])
    out[#out + 1] = ARGV[i]
  end
end
return out
"""

# ARGV: now_ms, token, mode ('q' = mark queued, 'd' = drop), ids. Acts only on this
# producer's own claims: a task that already started has cleared the marker.
_SETTLE = """
local mine = 'c' .. ARGV[2] .. ':'
for i = 4, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and string.sub(cur, 1, #mine) == mine then
    if ARGV[3] == 'q' then redis.call('HSET', KEYS[1], ARGV[i], 'q' .. ARGV[1])
    else redis.call('HDEL', KEYS[1], ARGV[i]) end
  end
end
return 1
"""

_AT = re.compile(rb"(\d+)$")


def now_ms() -> int:
    return int(time.time() * 1000)


def new_token() -> str:
    return secrets.token_hex(4)


def claim(kind: str, ids: Iterable[int], token: str, *, trust_claims: bool = True, stale_ms: int = STALE_MS) -> list[int]:
    """Claim ids for publishing; return those this producer must send."""
    ids = sorted(set(ids))
    if not ids:
        return []
    script = client().register_script(_CLAIM)
    fresh = script(keys=[keys.dirty_key(kind)], args=[now_ms(), stale_ms, token, int(trust_claims), *ids])
    return [int(x) for x in fresh]


def _settle(kind: str, ids: list[int], token: str, mode: str) -> None:
    if ids:
        client().register_script(_SETTLE)(keys=[keys.dirty_key(kind)], args=[now_ms(), token, mode, *ids])


def queued(kind: str, ids: list[int], token: str) -> None:
    """The broker accepted these ids' tasks: later producers may skip them."""
    _settle(kind, ids, token, "q")


def unclaim(kind: str, ids: list[int], token: str) -> None:
    """Publishing failed: drop this producer's claims so the next event sends."""
    _settle(kind, ids, token, "d")


def release(kind: str, ids: Iterable[int]) -> None:
    """A task starts: from now on an event for these ids queues another rebuild."""
    ids = list(ids)
    if ids:
        client().hdel(keys.dirty_key(kind), *ids)


def stale(kind: str, *, stale_ms: int = STALE_MS) -> list[int]:
    cutoff = now_ms() - stale_ms
    out = []
    for k, v in client().hgetall(keys.dirty_key(kind)).items():
        m = _AT.search(v)
        if m is None or int(m.group(1)) < cutoff:
            out.append(int(k))
    return out
