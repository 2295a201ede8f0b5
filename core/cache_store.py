"""Versioned cache writes: a Lua compare-and-set per entry, tombstones for deleted rows."""
from __future__ import annotations

from collections.abc import Iterable

import redis

from .builders import Entry

# Tombstones outlive any rebuild that could have read the row before it was deleted
# (tasks are killed after CELERY_TASK_TIME_LIMIT), so a late write cannot resurrect it.
TOMBSTONE_TTL = 24 * 3600

# KEYS[1] entry. ARGV: version, built_at_ms, then field/value pairs. Versions come from
# Postgres (one sequence, core.triggers); built_at is Postgres' clock at the rebuild.
# Refuses a write older than what is stored: a lower version, or the same version built
# earlier (a time-driven rebuild moves no version); over a tombstone, any version up to the
# deleted row's last one (a late rebuild of the old row) but not a row inserted since.
# Returns 1 when written, 0 when refused.
_CAS = """
local cur = redis.call('HMGET', KEYS[1], 'version', 'built_at', 'deleted')
if cur[1] then
  local cv, nv = tonumber(cur[1]), tonumber(ARGV[1])
  if cv > nv then return 0 end
  if cv == nv and (cur[3] or tonumber(cur[2] or '0') > tonumber(ARGV[2])) then return 0 end
elseif cur[3] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'built_at', ARGV[2], unpack(ARGV, 3))
return 1
"""

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
    """Writes entries through one pipeline per batch: one round trip whatever the count.

    redis-py pipelines check SCRIPT EXISTS and load missing scripts before executing, so a
    restarted Redis (which forgets scripts) needs no special handling here.
    """

    def __init__(self, client: redis.Redis):
        self.client = client
        self._cas = client.register_script(_CAS)
        self._tomb = client.register_script(_TOMBSTONE)

    def write_many(self, items: Iterable[tuple[str, Entry]], built_at_ms: int) -> list[bool]:
        items = list(items)
        if not items:
            return []
        pipe = self.client.pipeline(transaction=False)
        for key, entry in items:
            args: list = [entry.version, built_at_ms]
            for name, value in entry.fields.items():
                args += [name, value]
            self._cas(keys=[key], args=args, client=pipe)
        return [bool(r) for r in pipe.execute()]

    def tombstone_many(self, items: Iterable[tuple[str, int]], built_at_ms: int) -> list[bool]:
        """Mark entries deleted, each with its row's last version (`(key, version)` pairs)."""
        items = list(items)
        if not items:
            return []
        pipe = self.client.pipeline(transaction=False)
        for key, version in items:
            self._tomb(keys=[key], args=[version, built_at_ms, TOMBSTONE_TTL], client=pipe)
        return [bool(r) for r in pipe.execute()]
