"""In-process LRU for hot cache entries, kept exact by Redis CLIENT TRACKING invalidations.

Exactness argument (see also Tracker):
- An entry is stored only through a Ticket opened *before* the Redis reads it is built from;
  the ticket names every Redis key the entry depends on. An invalidation of any of those
  keys, or a clear, kills every open ticket naming it, so bytes read just before an
  invalidation can never be stored after it (the read/invalidate/store race).
- Every entry lists its Redis keys; an invalidation drops each entry that depends on one.
- While the tracking connection is down nothing is stored and everything is dropped:
  invalidations may have been missed.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

# Entries whose size we do not know (small objects) count as this many bytes.
DEFAULT_WEIGHT = 512


class Ticket:
    """Permission to store one entry built from reads made after the ticket was opened."""

    __slots__ = ("deps", "valid")

    def __init__(self, deps: set[str]):
        self.deps = deps
        self.valid = True


class LocalCache:
    """Bounded (entry count and approximate bytes) LRU with dependency invalidation."""

    def __init__(self, max_entries: int, max_bytes: int):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: OrderedDict[object, tuple[object, frozenset[str], int]] = OrderedDict()
        self._deps: dict[str, set[object]] = {}
        self._tickets: set[Ticket] = set()
        self._bytes = 0
        self._lock = threading.Lock()
        self.enabled = False
        self.invalidations = 0
        self.evictions = 0

    # -- reads (no lock: a dict lookup is atomic under the GIL) ------------------------

    def get(self, key):
        item = self._data.get(key)
        if item is None:
            return None
        try:
            self._data.move_to_end(key)
        except KeyError:  # dropped by an invalidation between the two lines: still a hit
            pass          # of bytes that were current when the lookup started
        return item[0]

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    # -- writes ------------------------------------------------------------------------

    def begin(self, deps: Iterable[str]) -> Ticket | None:
        """Open a ticket before reading `deps` from Redis; None while tracking is down."""
        if not self.enabled:
            return None
        ticket = Ticket(set(deps))
        with self._lock:
            if not self.enabled:
                return None
            self._tickets.add(ticket)
        return ticket

    def abandon(self, ticket: Ticket | None) -> None:
        if ticket is not None:
            with self._lock:
                self._tickets.discard(ticket)

    def commit(self, ticket: Ticket | None, key, value, weight: int = DEFAULT_WEIGHT) -> bool:
        """Store `value` unless a dependency was invalidated since the ticket opened."""
        if ticket is None:
            return False
        with self._lock:
            self._tickets.discard(ticket)
            if not (ticket.valid and self.enabled):
                return False
            self._drop(key)
            deps = frozenset(ticket.deps)
            self._data[key] = (value, deps, weight)
            self._bytes += weight
            for dep in deps:
                self._deps.setdefault(dep, set()).add(key)
            while self._data and (len(self._data) > self.max_entries or self._bytes > self.max_bytes):
                self._drop(next(iter(self._data)))
                self.evictions += 1
        return True

    def invalidate(self, redis_keys: Iterable[str]) -> None:
        with self._lock:
            keys = set(redis_keys)
            self.invalidations += len(keys)
            for ticket in self._tickets:
                if ticket.valid and not ticket.deps.isdisjoint(keys):
                    ticket.valid = False
            for rk in keys:
                for key in self._deps.pop(rk, ()):
                    self._drop(key)

    def clear(self, *, enabled: bool | None = None) -> None:
        """Drop everything and kill open tickets; optionally switch storing on or off."""
        with self._lock:
            if enabled is not None:
                self.enabled = enabled
            for ticket in self._tickets:
                ticket.valid = False
            self._tickets.clear()
            self._data.clear()
            self._deps.clear()
            self._bytes = 0

    def _drop(self, key) -> None:  # caller holds the lock
        item = self._data.pop(key, None)
        if item is None:
            return
        _value, deps, weight = item
        self._bytes -= weight
        for dep in deps:
            users = self._deps.get(dep)
            if users is not None:
                users.discard(key)
                if not users:
                    del self._deps[dep]
