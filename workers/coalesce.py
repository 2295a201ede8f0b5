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

Producers also count the tasks they published that no worker has started yet: each task
has a ticket, registered (`inflight`, scored by publish time) before it is sent and
dropped when a run of it starts. While PREWARM_WAITING_TASKS tickets wait, the relay holds new
outbox rows back and web processes leave their changes to it (workers.relay.Gate): the
rows pile up in Postgres, and the next batch takes all of them in one task. Under load a
task then carries many ids (one query set, one Redis round trip for all), so the work per
change shrinks as the rate grows; at a low rate nothing waits and nothing is held. A ticket
whose task was lost counts for TICKET_STALE_MS at most.

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
from core.redis_conn import client, round_trip

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
# A ticket older than this is taken for a lost task, and stops holding producers back.
# A task waiting this long means the workers are far behind or down: then the relay sends
# one batch per TICKET_STALE_MS while the rest waits in the outbox.
TICKET_STALE_MS = 1_000
# A started run rings this bell (a list, trimmed) so a relay holding rows back wakes at once.
BELL_KEEP = 8

# KEYS: dirty hash, inflight tickets. ARGV: now_ms, claim_stale_ms, queued_stale_ms, token,
# waiting_limit, ticket_stale_ms, ids. A relay token starts with 'r': a relay trusts queued
# ids and other producers' fresh claims, never another relay's claim (that relay may have
# died mid-batch, and its rows are being re-read right now). A running marker counts as
# absent: that run may have read the rows before this change. Any other producer claims
# nothing while waiting_limit tickets wait (0: no limit): the relay will batch its change.
# Claiming anything registers the producer's first ticket, the token itself.
_CLAIM = """
local now, claim_stale, queued_stale, token = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local limit, ticket_stale = tonumber(ARGV[5]), tonumber(ARGV[6])
local relay = string.sub(token, 1, 1) == 'r'
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ticket_stale)
if limit > 0 and not relay and redis.call('ZCARD', KEYS[2]) >= limit then return {} end
local out = {}
for i = 7, #ARGV do
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
if #out > 0 then redis.call('ZADD', KEYS[2], now, token) end
return out
"""

# KEYS: dirty hash, inflight tickets. ARGV: now_ms, token, mode ('q' = mark queued, 'd' =
# drop, 'a' = abandon: keep the claim but dated 0, i.e. stale at once), the number n of
# tickets that follow, n tickets, ids. Acts only on this producer's own claims: a task that
# already started has made the marker its running marker. The tickets are those of tasks
# that were not sent: they are dropped.
_SETTLE = """
local mine = 'c' .. ARGV[2] .. ':'
local n = tonumber(ARGV[4])
for i = 5, 4 + n do redis.call('ZREM', KEYS[2], ARGV[i]) end
for i = 5 + n, #ARGV do
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


def claim(
    kind: str, ids: Iterable[int], token: str, *, now: int | None = None, waiting_limit: int = 0
) -> list[int]:
    """Claim ids for publishing; return those this producer must send. With `waiting_limit`,
    a producer other than the relay claims nothing while that many tickets wait."""
    ids = sorted(set(ids))
    if not ids:
        return []
    script = client().register_script(_CLAIM)
    now = now if now is not None else now_ms()
    args = [now, CLAIM_STALE_MS, QUEUED_STALE_MS, token, waiting_limit, TICKET_STALE_MS, *ids]
    return [int(x) for x in script(keys=[keys.dirty_key(kind), keys.inflight_key()], args=args)]


def ticket(token: str, n: int) -> str:
    """The ticket of a producer's n-th task (0-based): the first is the token, which its
    claim registered."""
    return token if n == 0 else f"{token}.{n}"


def register(tickets: list[str]) -> None:
    """Count these tasks as waiting before they are sent (the first is registered by claim)."""
    if tickets:
        now = now_ms()
        client().zadd(keys.inflight_key(), dict.fromkeys(tickets, now))


def _settle(kind: str, ids: list[int], token: str, mode: str, unsent: list[str] = ()) -> None:
    if ids or unsent:
        client().register_script(_SETTLE)(
            keys=[keys.dirty_key(kind), keys.inflight_key()], args=[now_ms(), token, mode, len(unsent), *unsent, *ids]
        )


def queued(kind: str, ids: list[int], token: str) -> None:
    """The broker accepted these ids' tasks: later producers may skip them."""
    _settle(kind, ids, token, "q")


def unclaim(kind: str, ids: list[int], token: str, unsent: list[str] = ()) -> None:
    """Publishing failed and the caller keeps its event: drop this producer's claims and the
    tickets of the tasks it did not send."""
    _settle(kind, ids, token, "d", unsent)


def abandon(kind: str, ids: list[int], token: str, unsent: list[str] = ()) -> None:
    """Publishing failed and nothing else keeps the event (another producer may have skipped
    these ids for our claim): leave the claims stale at once, for the next producer or the
    sweeper to take over; drop the tickets of the tasks it did not send."""
    _settle(kind, ids, token, "a", unsent)


def start(kind: str, ids: Iterable[int], *, now: int | None = None, ticket: str | None = None) -> str:
    """A task run starts: mark its ids running (whatever marked them) and return the run's
    token. From now on an event for these ids queues another rebuild; if this run dies, the
    sweeper re-queues them once the markers are RUNNING_STALE_MS old. Its ticket stops
    counting as waiting, and the bell wakes a relay that holds rows back for it.

    One round trip, no script: HSET is atomic, and every marker it replaces stands for a
    commit made before now, which this run is about to read."""
    run = secrets.token_hex(6)
    marker = f"r{run}:{now if now is not None else now_ms()}"
    commands: list[tuple] = []
    if ids := list(ids):
        commands.append(("HSET", keys.dirty_key(kind), *(x for i in ids for x in (i, marker))))
    if ticket is not None:
        bell = keys.bell_key()
        commands += [("ZREM", keys.inflight_key(), ticket), ("LPUSH", bell, 1), ("LTRIM", bell, 0, BELL_KEEP - 1)]
    # Packed in one write (core.redis_conn): a third cheaper than redis-py's pipeline, on the
    # path of every task before it reads Postgres. Safe to repeat after a lost connection.
    round_trip(commands)
    return run


def waiting(*, now: int | None = None) -> int:
    """Tasks published and not started yet (lost ones for TICKET_STALE_MS at most)."""
    now = now if now is not None else now_ms()
    inflight = keys.inflight_key()
    # Packed (core.redis_conn): the relay asks before every batch, on the path of each change.
    return round_trip([("ZREMRANGEBYSCORE", inflight, "-inf", now - TICKET_STALE_MS), ("ZCARD", inflight)])[1]


def wait_for_start(timeout: float) -> None:
    """Return when a task run starts (the bell rings), or after `timeout` seconds."""
    client().blpop([keys.bell_key()], timeout=timeout)


def _finish(kind: str, ids: list[int], run: str, mode: str, pipe=None) -> None:
    # EVAL, not EVALSHA: in a pipeline redis-py would add a SCRIPT EXISTS round trip, and
    # this short script is compiled once by Redis and cached by its hash anyway.
    if ids:
        target = pipe if pipe is not None else client()
        # execute_command: redis-py's cluster pipeline has no eval(), and routes this by its key.
        target.execute_command("EVAL", _FINISH, 1, keys.dirty_key(kind), run, mode, *ids)


def done(kind: str, ids: Iterable[int], run: str, pipe=None) -> None:
    """The run rebuilt its ids: drop its running markers, and only those. With `pipe`, the
    command joins that pipeline (a task's deferred metrics) instead of its own round trip."""
    _finish(kind, list(ids), run, "d", pipe)


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
