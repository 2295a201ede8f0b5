"""Answers kept for a moment per process: an anonymous probe (/readyz, /metrics) costs new
Postgres, Redis and broker connections (~12 ms), so without this ~160 calls/s fill a server."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from django.conf import settings

T = TypeVar("T")


class Brief(Generic[T]):
    """compute()'s answer, kept PREWARM_PROBE_CACHE_SECONDS (0: computed on every call)."""

    def __init__(self, compute: Callable[[], T]) -> None:
        self.compute = compute
        self._lock = threading.Lock()
        self._value: T | None = None
        self._until = 0.0

    def get(self) -> T:
        seconds = settings.PREWARM_PROBE_CACHE_SECONDS
        if seconds <= 0:
            return self.compute()
        if time.monotonic() < self._until:
            return self._value
        # One caller computes; the others wait for its answer rather than each connecting.
        with self._lock:
            if time.monotonic() >= self._until:
                self._value = self.compute()
                self._until = time.monotonic() + seconds  # from the end: a slow check counts
            return self._value

    def clear(self) -> None:
        self._until = 0.0
