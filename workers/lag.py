"""Invalidation lag (commit -> entry written) as a histogram kept in Redis for /metrics."""
from __future__ import annotations

import bisect
import time

from core import keys
from core.redis_conn import client

# Upper bounds in seconds, Prometheus style; the last bucket is +Inf.
SAMPLES_KEPT = 20_000
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def bucket_label(index: int) -> str:
    return "+Inf" if index >= len(BUCKETS) else repr(BUCKETS[index])


def observe(committed_at: float | None, count: int = 1, now: float | None = None) -> float | None:
    """Record one observation per rebuilt entry; returns the lag in seconds."""
    if committed_at is None or count <= 0:
        return None
    lag = max(0.0, (now if now is not None else time.time()) - committed_at)
    index = bisect.bisect_left(BUCKETS, lag)
    pipe = client().pipeline(transaction=False)
    pipe.hincrby(keys.lag_key(), f"b{index}", count)
    pipe.hincrby(keys.lag_key(), "count", count)
    pipe.hincrbyfloat(keys.lag_key(), "sum", lag * count)
    # The most recent raw samples, for exact percentiles in bench/ and for operators.
    pipe.lpush(keys.lag_samples_key(), f"{lag:.6f}")
    pipe.ltrim(keys.lag_samples_key(), 0, SAMPLES_KEPT - 1)
    pipe.execute()
    return lag


def snapshot() -> tuple[list[tuple[str, int]], int, float]:
    """Cumulative buckets, count and sum, ready for Prometheus text."""
    raw = {k.decode(): v for k, v in client().hgetall(keys.lag_key()).items()}
    running, cumulative = 0, []
    for i in range(len(BUCKETS) + 1):
        running += int(raw.get(f"b{i}", 0))
        cumulative.append((bucket_label(i), running))
    return cumulative, int(raw.get("count", 0)), float(raw.get("sum", 0.0))


def recent_samples() -> list[float]:
    """The latest lag observations (seconds), newest first."""
    return [float(x) for x in client().lrange(keys.lag_samples_key(), 0, -1)]
