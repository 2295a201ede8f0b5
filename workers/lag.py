"""Invalidation lag (commit -> entry written) and its hops, observed into core.metrics."""
from __future__ import annotations

import time

from core import metrics


def observe(committed_at: float | None, count: int = 1, now: float | None = None, *, edge: bool = False
            ) -> float | None:
    """Record one observation per rebuilt entry; returns the lag in seconds. `edge`: the
    moment is a time edge's, not a commit's (its own histogram: EDGE_LATENESS)."""
    if committed_at is None or count <= 0:
        return None
    # A committer's clock a little ahead of this worker's must not count as negative lag.
    lag = max(0.0, (now if now is not None else time.time()) - committed_at)
    metrics.STORE.observe(metrics.EDGE_LATENESS if edge else metrics.INVALIDATION_LAG, lag, count=count)
    return lag


# (hop, stamp it starts at, stamp it ends at): the stamps a task collects (workers.tasks).
HOPS = (
    ("notify", "committed", "seen"),
    ("relay", "seen", "sent"),
    ("queue", "sent", "started"),
    ("read", "started", "read"),
    ("write", "read", "written"),
)


def hops(stamps: dict[str, float | None]) -> dict[str, float]:
    """Seconds spent in each hop whose two ends were stamped (epoch seconds, any host's clock:
    a hop that ends before it starts counts as 0)."""
    out = {}
    for hop, start, end in HOPS:
        a, b = stamps.get(start), stamps.get(end)
        if a is not None and b is not None:
            out[hop] = max(0.0, b - a)
    return out


def observe_hops(stamps: dict[str, float | None], count: int = 1) -> dict[str, float]:
    """Record each stamped hop once per rebuilt entry; returns them."""
    found = hops(stamps)
    if count > 0:
        for hop, seconds in found.items():
            metrics.STORE.observe(metrics.PIPELINE_HOPS, seconds, count=count, values=(hop,))
    return found
