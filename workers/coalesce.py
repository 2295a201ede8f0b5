"""Coalescing by markers: an id whose rebuild is queued (and not started) is not queued again.

A marker (one field of the `dirty:<kind>` hash per id) is in one of three states:

- `c<token>:<ms>` claimed: a producer is between claiming and publishing;
- `q<ms>` queued: the broker accepted the task;
- `r<token>:<ms>` running: task run `<token>` started then (one token per run, so a
  retry or a re-delivery is a new run).

A task turns its ids' markers into running markers *before* it reads Postgres. Producers
treat a running marker as absent and claim over it: the run may have read the rows before
their change, so an event that lands while a rebuild runs queues one more. The last event
is never dropped (unlike celery-once), and a burst costs one or two rebuilds. A run that
succeeds deletes only the markers that are still its own (a newer claim or queued marker
stays, for the rebuild it stands for); a run that raises dates its own markers 0, i.e.
stale at once.

Producers skip queued ids and other producers' fresh claims, so an ORM change announced by
both the signal path and the relay is usually queued once. The relay never trusts another
relay's claim (it may have died mid-batch; its rows are being re-read). A web process that
dies between claiming and publishing leaves a claim that goes stale after CLAIM_STALE_MS;
one whose publish fails leaves it stale at once (the relay may have deleted its row on the
strength of that claim). The sweeper in workers.tasks (beat, every 30 s) re-queues every
id whose marker outlived its state: late, never lost.

A worker that dies mid-task (SIGKILL, the OOM killer, a node lost, the hard time limit)
leaves its running markers behind. They go stale RUNNING_STALE_MS after the run started,
and the next sweep re-queues them, so a lost run's entries are rebuilt within
RUNNING_STALE_MS + 30 s (the sweep period) = 90 s of its start, plus the invalidate
queue's wait. The broker's own re-delivery of the lost message only comes after its
visibility timeout (600 s); by then it is a harmless duplicate (writes are versioned).

Every call is given at most a few thousand ids (`workers.events` claims in CLAIM_CHUNK
slices; a task holds events.BATCH; stale() reads in HSCAN slices): a script blocks Redis
while it runs, 2-4 us per id here.
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
# A running marker older than this is taken for a run that died (worker killed, node lost,
# hard time limit): the sweeper re-queues its ids. Rebuild runs take milliseconds (a full
# 500-profile batch 40-70 ms in the acceptance tests' logs), so a live run this old is
# stuck, not busy: on a lock, or on a Postgres that stopped answering. Re-queueing a live
# run costs one duplicate rebuild, harmless because writes are versioned, and at most one
# per RUNNING_STALE_MS (the duplicate's own start renews the marker). Far shorter than the
# 240 s soft time limit: waiting for it would keep a dead run's entries stale for minutes.
RUNNING_STALE_MS = 60_000

# ARGV: now_ms, claim_stale_ms, queued_stale_ms, token, ids. A relay token starts with 'r':
# a relay trusts queued ids and other producers' fresh claims, never another relay's claim
# (that relay may have died mid-batch, and its rows are being re-read right now). A running
# marker counts as absent: that run may have read the rows before this change.
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
    elseif state ~= 'r' then skip = age <= claim_stale and not (relay and string.sub(cur, 2, 2) == 'r') end
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
# that already started has made the marker its running marker.
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

# ARGV: run token, mode ('d' = done: delete, 'f' = failed: date 0, i.e. stale at once), ids.
# Acts on this run's own running markers only: a newer claim, queued or running marker
# stands for a rebuild still to come. A failed run also marks an id with no marker (the
# hash was evicted or flushed meanwhile): nothing else would rebuild it.
_FINISH = """
local mine = 'r' .. ARGV[1] .. ':'
for i = 3, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and string.sub(cur, 1, #mine) == mine then
    if ARGV[2] == 'd' then redis.call('HDEL', KEYS[1], ARGV[i])
    else redis.call('HSET', KEYS[1], ARGV[i], mine .. '0') end
  elseif not cur and ARGV[2] == 'f' then
    redis.call('HSET', KEYS[1], ARGV[i], mine .. '0')
  end
end
return 1
"""

_AT = re.compile(rb"(\d+)$")
# Ids read per HSCAN call in stale(): one HGETALL of a million markers blocked Redis ~0.1 s.
SCAN_COUNT = 1_000


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


def start(kind: str, ids: Iterable[int], *, now: int | None = None) -> str:
    """A task run starts: mark its ids running (whatever marked them) and return the run's
    token. From now on an event for these ids queues another rebuild; if this run dies, the
    sweeper re-queues them once the markers are RUNNING_STALE_MS old.

    One HSET: atomic, no script needed. Every marker it replaces stands for a commit made
    before now, which this run is about to read."""
    run = secrets.token_hex(6)
    marker = f"r{run}:{now if now is not None else now_ms()}"
    ids = list(ids)
    if ids:
        client().hset(keys.dirty_key(kind), mapping=dict.fromkeys(ids, marker))
    return run


def _finish(kind: str, ids: list[int], run: str, mode: str) -> None:
    if ids:
        client().register_script(_FINISH)(keys=[keys.dirty_key(kind)], args=[run, mode, *ids])


def done(kind: str, ids: Iterable[int], run: str) -> None:
    """The run rebuilt its ids: drop its running markers, and only those."""
    _finish(kind, list(ids), run, "d")


def failed(kind: str, ids: Iterable[int], run: str) -> None:
    """The run raised (this attempt may be the last: an error not retried, retries used up,
    a soft time limit): leave its ids stale at once, so the sweeper re-sends them."""
    _finish(kind, list(ids), run, "f")


def stale(kind: str, *, now: int | None = None) -> list[int]:
    """Ids whose marker outlived its state: a producer died, a task was lost, a run died or
    failed. Read in HSCAN slices, so a hash of a million markers never blocks Redis."""
    now = now if now is not None else now_ms()
    limits = {b"q": QUEUED_STALE_MS, b"r": RUNNING_STALE_MS}  # anything else is a claim
    out = set()  # HSCAN may return a field twice while the hash is being resized
    for k, v in client().hscan_iter(keys.dirty_key(kind), count=SCAN_COUNT):
        m = _AT.search(v)
        if m is None or now - int(m.group(1)) > limits.get(v[:1], CLAIM_STALE_MS):
            out.add(int(k))
    return sorted(out)
