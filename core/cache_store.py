"""Versioned cache writes: a Lua compare-and-set per entry, tombstones for deleted rows."""
from __future__ import annotations

from collections.abc import Iterable

import redis

from .builders import Entry
from .redis_conn import Sent, is_cluster, round_trip

# Tombstones outlive any rebuild that could have read the row before it was deleted
# (tasks are killed after CELERY_TASK_TIME_LIMIT), so a late write cannot resurrect it.
TOMBSTONE_TTL = 24 * 3600

# KEYS: the entries. ARGV[1]: built_at_ms (Postgres' clock at the rebuild), then per key its
# version, its field count n and n field/value pairs. Versions come from Postgres (one
# sequence, core.triggers). Refuses a write older than what is stored: a lower version, or
# the same version built earlier (a time-driven rebuild moves no version); over a
# tombstone, any version up to the deleted row's last one (a late rebuild of the old row)
# but not a row inserted since. Returns 1 per key written, 0 per key refused.
# Many keys per call: a script call costs Redis ~6.5 us an entry alone and ~3.8 us in a
# batch of 100 (plain pipelined HSETs: ~4.7 us), measured with INFO commandstats here. On a
# Redis Cluster a script's keys must share a slot: a batch is grouped by slot first (per-slot
# batches), and core.redis_conn sends each node its own scripts in one write.
_CAS = """
local built = ARGV[1]
local b = tonumber(built)
local out = {}
local a = 2
for i, key in ipairs(KEYS) do
  local nv = tonumber(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  local cur = redis.call('HMGET', key, 'version', 'built_at', 'deleted')
  local ok = 1
  if cur[1] then
    local cv = tonumber(cur[1])
    if cv > nv or (cv == nv and (cur[3] or tonumber(cur[2] or '0') > b)) then ok = 0 end
  elseif cur[3] then ok = 0 end
  if ok == 1 then
    redis.call('DEL', key)
    redis.call('HSET', key, 'version', ARGV[a], 'built_at', built, unpack(ARGV, a + 2, a + 1 + 2 * n))
  end
  out[i] = ok
  a = a + 2 + 2 * n
end
return out
"""
# Entries per script call: a script blocks Redis while it runs (~0.4 ms for 100 here).
CAS_BATCH = 100

# ARGV: the deleted row's last version (0 when unknown), built_at_ms, ttl. Refused over an
# entry of a newer row with the same id.
_TOMBSTONE = """
local cv = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if cv > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'deleted', '1', 'version', ARGV[1], 'built_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class Store:
    """Writes entries in one round trip per batch, whatever the count.

    Commands are packed by hiredis and sent in one write, replies read in bulk
    (core.redis_conn.round_trip): about a quarter of redis-py's pipeline cost per command,
    which was a third of a 500-profile rebuild. Scripts go as EVALSHA; a Redis that forgot
    them (restarted) answers NOSCRIPT instead: they are loaded then and the batch sent
    again, which is safe because every write is a compare-and-set by version.
    """

    def __init__(self, client: redis.Redis):
        self.client = client
        self.by_slot = is_cluster(client)
        self._scripts = [client.register_script(_CAS), client.register_script(_TOMBSTONE)]
        self._cas, self._tomb = (s.sha for s in self._scripts)

    def _execute(self, commands: list[tuple]) -> list:
        if not commands:
            return []
        return self._checked(commands, round_trip(commands, self.client))

    def _checked(self, commands: list[tuple], results: list) -> list:
        """The replies, after sending the batch again once if Redis had forgotten the
        scripts; an error reply raises."""
        if any(_is_noscript(r) for r in results):
            for script in self._scripts:
                self.client.script_load(script.script)
            results = round_trip(commands, self.client)
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results

    def write_many(self, items: Iterable[tuple[str, Entry]], built_at_ms: int) -> list[bool]:
        return self.write_many_then(items, built_at_ms)[0]

    def write_many_then(
        self, items: Iterable[tuple[str, Entry]], built_at_ms: int, then: Iterable[tuple] = ()
    ) -> tuple[list[bool], list]:
        """Write the entries, then send the commands `then` in the same round trip; returns
        whether each entry was written, and the replies to `then`. After a NOSCRIPT the whole
        batch goes again, so `then` must be safe to repeat."""
        return self.send_many_then(items, built_at_ms, then).result()

    def send_many_then(
        self, items: Iterable[tuple[str, Entry]], built_at_ms: int, then: Iterable[tuple] = ()
    ) -> Pending:
        """As write_many_then, but returns once the commands are sent: the caller can work
        (read and build the next batch) while Redis runs them, then ask for the result."""
        items = list(items)
        order = None
        if self.by_slot:
            # Stable: within a slot the batch keeps its order; `order` puts results back.
            slot = self.client.keyslot
            order = sorted(range(len(items)), key=lambda i: slot(items[i][0]))
            items = [items[i] for i in order]
        commands = []
        for batch in self._batches(items):
            argv: list = [built_at_ms]
            for _, entry in batch:
                argv += [entry.version, len(entry.fields)]
                for name, value in entry.fields.items():
                    argv += [name, value]
            commands.append(("EVALSHA", self._cas, len(batch), *(key for key, _ in batch), *argv))
        commands_then = [*commands, *then]
        return Pending(self, commands_then, len(commands), order)

    def _batches(self, items: list[tuple[str, Entry]]):
        """Up to CAS_BATCH items a script call; on a cluster, of one slot each (items sorted by slot)."""
        if not self.by_slot:
            for i in range(0, len(items), CAS_BATCH):
                yield items[i : i + CAS_BATCH]
            return
        slot, batch, at = self.client.keyslot, [], None
        for item in items:
            here = slot(item[0])
            if batch and (here != at or len(batch) == CAS_BATCH):
                yield batch
                batch = []
            batch.append(item)
            at = here
        if batch:
            yield batch

    def tombstone_many(self, items: Iterable[tuple[str, int]], built_at_ms: int) -> list[bool]:
        """Mark entries deleted, each with its row's last version (`(key, version)` pairs)."""
        commands = [("EVALSHA", self._tomb, 1, key, version, built_at_ms, TOMBSTONE_TTL) for key, version in items]
        return [bool(r) for r in self._execute(commands)]


class Pending:
    """A batch of writes sent, its replies not read yet (Store.send_many_then)."""

    def __init__(self, store: Store, commands: list[tuple], scripts: int, order: list[int] | None = None):
        self.store, self.commands, self.scripts, self.order = store, commands, scripts, order
        try:
            self.sent = Sent(commands, store.client) if commands else None
        except (redis.ConnectionError, redis.TimeoutError):
            self.sent = None  # a pooled connection that died idle: result() sends on a new one

    def close(self) -> None:
        """Give the connection back unread (it is dropped: its replies are still coming)."""
        if self.sent is not None:
            self.sent.close()

    def result(self) -> tuple[list[bool], list]:
        """Whether each entry was written, and the replies to the commands sent after them."""
        if not self.commands:
            return [], []
        results = None
        if self.sent is not None:
            try:
                results = self.sent.replies()
            except (redis.ConnectionError, redis.TimeoutError):
                results = None  # tried again as round_trip would: every write is a compare-and-set
        if results is None:
            results = round_trip(self.commands, self.store.client)
        results = self.store._checked(self.commands, results)
        written = [bool(ok) for reply in results[: self.scripts] for ok in reply]
        if self.order is not None:  # sent grouped by slot: back to the caller's order
            placed = [False] * len(written)
            for ok, i in zip(written, self.order):
                placed[i] = ok
            written = placed
        return written, results[self.scripts :]


def _is_noscript(reply) -> bool:
    return isinstance(reply, redis.ResponseError) and str(reply).startswith("NOSCRIPT")
