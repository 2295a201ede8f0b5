"""/metrics: Prometheus text from Redis counters, the lag histogram, the outbox and the queues.

Per-request hit/miss counts stay in process memory (a dict increment) and the tracking
thread adds them to the shared counters hash about once a second: no Redis round trip per
request, and every process's counts end up in one place.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from core import keys
from core.redis_conn import client

from .http import endpoint

log = logging.getLogger("prewarm.api.metrics")

FLUSH_EVERY = 1.0
FIELD_PREFIX = "api:"  # counters hash fields written by API processes: api:<family>:<outcome>
QUEUES = ("invalidate", "warmup")
BROKER_TIMEOUT = 1.0

COUNTS: defaultdict[str, int] = defaultdict(int)
_flushed: dict[str, int] = {}
_flush_state = {"at": 0.0}
_flush_lock = threading.Lock()


def flush() -> None:
    """Add what this process counted since the last flush to the shared counters hash."""
    with _flush_lock:
        deltas = {}
        for name, value in list(COUNTS.items()):
            delta = value - _flushed.get(name, 0)
            if delta:
                deltas[name] = (delta, value)
        if not deltas:
            return
        pipe = client().pipeline(transaction=False)
        for name, (delta, _) in deltas.items():
            pipe.hincrby(keys.counters_key(), FIELD_PREFIX + name, delta)
        pipe.execute()
        for name, (_, value) in deltas.items():
            _flushed[name] = value


def flush_quietly() -> None:
    now = time.monotonic()
    if now - _flush_state["at"] < FLUSH_EVERY:
        return
    _flush_state["at"] = now
    try:
        flush()
    except Exception as exc:  # Redis down: the counts wait in memory
        log.debug("metrics flush failed: %s", exc)


# -- collection ----------------------------------------------------------------------


def _counters() -> dict[str, int]:
    return {k.decode(): int(float(v)) for k, v in client().hgetall(keys.counters_key()).items()}


def _outbox() -> tuple[int, float | None]:
    from workers.relay import backlog

    connection.ensure_connection()
    return backlog(connection.connection)


def _queue_depths() -> dict[str, int]:
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        broker = redis.Redis.from_url(url, socket_timeout=BROKER_TIMEOUT, socket_connect_timeout=BROKER_TIMEOUT)
        try:
            pipe = broker.pipeline(transaction=False)
            for q in QUEUES:
                pipe.llen(q)
            return dict(zip(QUEUES, pipe.execute()))
        finally:
            broker.close()
    from kombu import Connection

    depths = {}
    with Connection(url, connect_timeout=BROKER_TIMEOUT) as conn:
        channel = conn.channel()
        for q in QUEUES:
            depths[q] = channel.queue_declare(queue=q, passive=True).message_count
    return depths


class _Collector:
    def collect(self):
        from workers import lag

        from . import tracking

        errors = GaugeMetricFamily("prewarm_scrape_error", "1 when a part of this scrape failed", labels=["part"])
        try:
            flush()
        except Exception:
            pass
        try:
            counters = _counters()
        except Exception as exc:
            log.debug("counters: %s", exc)
            counters = None
            errors.add_metric(["counters"], 1)
        if counters is not None:
            rebuilds = CounterMetricFamily("prewarm_rebuilds", "Entries written by rebuilds", labels=["family"])
            refused = CounterMetricFamily(
                "prewarm_rebuilds_refused", "Writes refused because newer data was stored", labels=["family"]
            )
            deleted = CounterMetricFamily("prewarm_entries_deleted", "Tombstones written", labels=["family"])
            hits = CounterMetricFamily("prewarm_api_hits", "Warm reads by layer", labels=["family", "layer"])
            misses = CounterMetricFamily("prewarm_api_misses", "Reads that had to build the entry", labels=["family"])
            built = CounterMetricFamily("prewarm_api_built", "Entries served after a build", labels=["family"])
            degraded = CounterMetricFamily(
                "prewarm_api_degraded", "Answers built from Postgres (Redis down)", labels=["family"]
            )
            other = CounterMetricFamily("prewarm_events", "Other pipeline counters", labels=["name"])
            for name, value in sorted(counters.items()):
                head, _, rest = name.partition(":")
                if head == "rebuilds":
                    rebuilds.add_metric([rest], value)
                elif head == "refused":
                    refused.add_metric([rest], value)
                elif head == "deleted":
                    deleted.add_metric([rest], value)
                elif head == "api":
                    family, _, outcome = rest.partition(":")
                    if outcome in ("local", "redis"):
                        hits.add_metric([family, outcome], value)
                    elif outcome == "miss":
                        misses.add_metric([family], value)
                    elif outcome == "built":
                        built.add_metric([family], value)
                    elif outcome == "degraded":
                        degraded.add_metric([family], value)
                else:
                    other.add_metric([name], value)
            yield from (rebuilds, refused, deleted, hits, misses, built, degraded, other)
        try:
            buckets, count, total = lag.snapshot()
            yield HistogramMetricFamily(
                "prewarm_invalidation_lag_seconds", "Commit to entry rewritten", buckets=buckets, sum_value=total
            )
        except Exception as exc:
            log.debug("lag: %s", exc)
            errors.add_metric(["lag"], 1)
        try:
            count, oldest = _outbox()
            yield GaugeMetricFamily("prewarm_outbox_backlog", "Outbox rows waiting for the relay", value=count)
            yield GaugeMetricFamily(
                "prewarm_outbox_oldest_seconds", "Age of the oldest outbox row", value=oldest or 0.0
            )
        except Exception as exc:
            log.debug("outbox: %s", exc)
            errors.add_metric(["outbox"], 1)
        try:
            depths = _queue_depths()
            queue = GaugeMetricFamily("prewarm_queue_depth", "Messages waiting in a Celery queue", labels=["queue"])
            for name, depth in depths.items():
                queue.add_metric([name], depth)
            yield queue
        except Exception as exc:
            log.debug("queues: %s", exc)
            errors.add_metric(["queues"], 1)
        tracker = tracking.get()
        cache = tracker.cache
        yield GaugeMetricFamily("prewarm_api_local_entries", "Entries in this process's local cache", value=len(cache))
        yield GaugeMetricFamily(
            "prewarm_api_local_bytes", "Approximate bytes in this process's local cache", value=cache.size_bytes
        )
        yield GaugeMetricFamily(
            "prewarm_api_tracking_up", "1 while this process receives Redis invalidations", value=int(tracker.alive)
        )
        yield errors


def view_body() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return generate_latest(registry)


def metrics_response() -> HttpResponse:
    return HttpResponse(view_body(), content_type=CONTENT_TYPE_LATEST)


@endpoint("GET")
def view(request):
    return metrics_response()
