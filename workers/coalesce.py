"""Coalescing by markers: an id whose rebuild is queued (and not started) is not queued again.

A marker is `c<token>:<ms>` while a producer publishes (claimed) and `q<ms>` once the
broker accepted the task (queued). A task clears its ids' markers *before* reading
Postgres, so an event that lands while a rebuild runs queues one more: the last event is
never dropped (unlike celery-once), and a burst costs one or two rebuilds.

Producers skip queued ids and other producers' fresh claims, so an ORM change announced by
both the signal path and the relay is usually queued once. The relay never trusts another
relay's claim (it may have died mid-batch; its rows are being re-read). A web process that
dies between claiming and publishing leaves a claim that goes stale after CLAIM_STALE_MS;
one whose publish fails leaves it stale at once (the relay may have deleted its row on the
strength of that claim). The sweeper in workers.tasks (beat, every 30 s) then re-queues
it: late, never lost.
"""
from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable

from core import keys
from core.redis_conn import client

# A claim is a producer between claiming and publishing (milliseconds); a queued marker
# waits for a worker (seconds, more under a backlog). Older ones count as absent.
CLAIM_STALE_MS = 5_000
QUEUED_STALE_MS = 60_000

# ARGV: now_ms, claim_stale_ms, queued_stale_ms, token, ids. A relay token starts with 'r':
# a relay trusts queued ids and other producers' fresh claims, never another relay's claim
# (that relay may have died mid-batch, and its rows are being re-read right now).
_CLAIM = """
local now, claim_stale, queued_stale, token = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local relay = string.sub(token, 1, 1) == 'r'
local out = {}
for i = 5, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local skip = false
  if cur then
    local state, age = string.sub(cur, 1, 1), now - tonumber(string.match(cur, '(%d+)$'))
    if state == 'q' then skip = age <= queued_stale
    else skip = age <= claim_stale and not (relay and string.sub(cur, 2, 2) == 'r') end
  end
  if not skip then
    redis.call('HSET', KEYS[1], ARGV[i], 'c' .. token .. ':' .. ARGV[1])
    out[#out + 1] = ARGV[i]
  end
end
return out
"""

# ARGV: now_ms, token, mode ('q' = mark queued, 'd' = drop, 'a' = abandon: keep the claim
# but dated 0, i.e. stale at once), ids. Acts only on this producer's own claims: a task
# that already started has cleared the marker.
_SETTLE = """
local mine = 'c' .. ARGV[2] .. ':'
for i = 4, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and string.sub(cur, 1, #mine) == mine then
    if ARGV[3] == 'q' then redis.call('HSET', KEYS[1], ARGV[i], 'q' .. ARGV[1])
    elseif ARGV[3] == 'a' then redis.call('HSET', KEYS[1], ARGV[i], mine .. '0')
    else redis.call('HDEL', KEYS[1], ARGV[i]) end
  end
end
return 1
"""

_AT = re.compile(rb"(\d+)$")


def now_ms() -> int:
    return int(time.time() * 1000)


def new_token(*, relay: bool = False) -> str:
    return ("r" if relay else "s") + secrets.token_hex(4)


def claim(kind: str, ids: Iterable[int], token: str, *, now: int | None = None) -> list[int]:
    """Claim ids for publishing; return those this producer must send."""
    ids = sorted(set(ids))
    if not ids:
        return []
    script = client().register_script(_CLAIM)
    args = [now if now is not None else now_ms(), CLAIM_STALE_MS, QUEUED_STALE_MS, token, *ids]
    return [int(x) for x in script(keys=[keys.dirty_key(kind)], args=args)]


def _settle(kind: str, ids: list[int], token: str, mode: str) -> None:
    if ids:
        client().register_script(_SETTLE)(keys=[keys.dirty_key(kind)], args=[now_ms(), token, mode, *ids])


def queued(kind: str, ids: list[int], token: str) -> None:
    """The broker accepted these ids' tasks: later producers may skip them."""
    _settle(kind, ids, token, "q")


def unclaim(kind: str, ids: list[int], token: str) -> None:
    """Publishing failed and the caller keeps its event: drop this producer's claims."""
    _settle(kind, ids, token, "d")


def abandon(kind: str, ids: list[int], token: str) -> None:
    """Publishing failed and nothing else keeps the event (another producer may have skipped
    these ids for our claim): leave the claims stale at once, for the next producer or the
    sweeper to take over."""
    _settle(kind, ids, token, "a")


def release(kind: str, ids: Iterable[int]) -> None:
    """A task starts: from now on an event for these ids queues another rebuild."""
    ids = list(ids)
    if ids:
        client().hdel(keys.dirty_key(kind), *ids)


def leave_for_sweeper(kind: str, ids: Iterable[int]) -> None:
    """A rebuild failed after its task released these ids: mark them stale at once (unless a
    newer marker is there: its task will rebuild them), so the sweeper re-sends them."""
    pipe = client().pipeline(transaction=False)
    for i in ids:
        pipe.hsetnx(keys.dirty_key(kind), i, "cfailed:0")
    pipe.execute()


def stale(kind: str, *, now: int | None = None) -> list[int]:
    """Ids whose marker outlived its state: a producer died, or a task was lost."""
    now = now if now is not None else now_ms()
    out = []
    for k, v in client().hgetall(keys.dirty_key(kind)).items():
        m = _AT.search(v)
        limit = QUEUED_STALE_MS if v[:1] == b"q" else CLAIM_STALE_MS
        if m is None or now - int(m.group(1)) > limit:
            out.append(int(k))
    return out
