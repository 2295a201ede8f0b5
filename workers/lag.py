"""Invalidation lag (commit -> entry written), observed into core.metrics.INVALIDATION_LAG."""
from __future__ import annotations

import time

from core import metrics


def observe(committed_at: float | None, count: int = 1, now: float | None = None) -> float | None:
    """Record one observation per rebuilt entry; returns the lag in seconds."""
    if committed_at is None or count <= 0:
        return None
    # A committer's clock a little ahead of this worker's must not count as negative lag.
    lag = max(0.0, (now if now is not None else time.time()) - committed_at)
    metrics.STORE.observe(metrics.INVALIDATION_LAG, lag, count=count)
    return lag
