"""/metrics: Prometheus text for every metric core.metrics declares, plus gauges read at scrape time.

Per-request counts stay in process memory (a dict increment: `HITS["profile", "local"] += 1`)
and the tracking thread adds them to the shared store about once a second (`flush_quietly`):
no Redis round trip per request, and every process's counts end up in one place.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from core import metrics
from workers import queues

from .brief import Brief
from .http import endpoint

log = logging.getLogger("prewarm.api.metrics")

FLUSH_EVERY = 1.0


class LocalCounts(dict):
    """This process's counts of one declared counter, keyed by its label values (a tuple, or
    the value itself for one label); what has not been flushed yet is value - flushed."""

    def __init__(self, counter: metrics.Counter) -> None:
        super().__init__()
        self.counter = counter
        self.flushed: dict = {}

    def __missing__(self, values):
        # Only a key's first increment comes here: wrong label values fail where they are
        # written, not later in a flush that would then drop every count.
        self.counter.field(values if isinstance(values, tuple) else (values,))
        return 0


HITS = LocalCounts(metrics.API_HITS)  # [family, layer]
MISSES = LocalCounts(metrics.API_MISSES)  # [family]
BUILT = LocalCounts(metrics.API_BUILT)
DEGRADED = LocalCounts(metrics.API_DEGRADED)
LOCAL_COUNTS = (HITS, MISSES, BUILT, DEGRADED)

_flush_state = {"at": 0.0}
_flush_lock = threading.Lock()


def flush() -> None:
    """Add what this process counted since the last flush to the shared store."""
    with _flush_lock:
        deltas = []
        for counts in LOCAL_COUNTS:
            for values, value in list(counts.items()):
                delta = value - counts.flushed.get(values, 0)
                if delta:
                    deltas.append((counts, values, delta, value))
        if not deltas:
            return
        metrics.STORE.add(
            (counts.counter, values if isinstance(values, tuple) else (values,), delta)
            for counts, values, delta, _ in deltas
        )
        for counts, values, _, value in deltas:
            counts.flushed[values] = value


def flush_quietly() -> None:
    now = time.monotonic()
    if now - _flush_state["at"] < FLUSH_EVERY:
        return
    _flush_state["at"] = now
    try:
        flush()
    except Exception as exc:  # Redis down: the counts wait in memory
        log.debug("metrics flush failed: %s", exc)


# -- gauges of this process, provided by the side that owns them ---------------------------


@dataclass(frozen=True, slots=True)
class LocalGauges:
    entries: int  # in this process's local cache
    size_bytes: int  # approximate size of that cache
    tracking_up: bool  # this process receives Redis invalidations


_local_gauges: dict[str, Callable[[], LocalGauges]] = {}


def register_local_gauges(provider: Callable[[], LocalGauges]) -> None:
    """Scrapes call `provider` for this process's local-cache gauges (registering again replaces
    it): the tracker side feeds them in, so this module never imports the tracker."""
    _local_gauges["provider"] = provider


# -- collection ----------------------------------------------------------------------


def declared_families(store) -> tuple[list, list[str]]:
    """Families for every declared counter, gauge and histogram as `store` holds them, and the parts
    that could not be read (for prewarm_scrape_error)."""
    families, failed = [], []
    for part, read, kind in (
        ("counters", lambda: metrics.counter_values(store.counter_fields()), CounterMetricFamily),
        ("gauges", lambda: metrics.gauge_values(store.gauge_fields()), GaugeMetricFamily),
    ):
        try:
            values = read()
        except Exception as exc:
            log.debug("%s: %s", part, exc)
            failed.append(part)
            continue
        for series_of, series in values.items():
            family = kind(series_of.name, series_of.help, labels=list(series_of.labels))
            for labels, value in sorted(series.items()):
                family.add_metric(list(labels), value)
            families.append(family)
    for histogram in metrics.histograms():
        try:
            series = histogram.snapshots(store.histogram_fields(histogram))
        except Exception as exc:
            log.debug("%s: %s", histogram.short, exc)
            failed.append(histogram.short)
            continue
        family = HistogramMetricFamily(histogram.name, histogram.help, labels=list(histogram.labels))
        for labels, snap in sorted(series.items()):
            family.add_metric(list(labels), snap.buckets, snap.sum)
        families.append(family)
    return families, failed


def warmup_families() -> list:
    """The queued and running warm-up jobs' progress, summed (ops.jobs)."""
    from ops.jobs import active_totals

    totals = active_totals()
    entries = GaugeMetricFamily("prewarm_warmup_entries", "Entries of the queued and running warm-up jobs",
                                labels=["part"])
    for part in ("total", "done", "failed", "refused"):
        entries.add_metric([part], totals[part])
    return [GaugeMetricFamily("prewarm_warmup_active_jobs", "Warm-up jobs queued or running", value=totals["jobs"]),
            entries]


def local_families() -> list:
    provider = _local_gauges.get("provider")
    if provider is None:
        return []
    gauges = provider()
    return [
        GaugeMetricFamily("prewarm_api_local_entries", "Entries in this process's local cache", value=gauges.entries),
        GaugeMetricFamily(
            "prewarm_api_local_bytes", "Approximate bytes in this process's local cache", value=gauges.size_bytes
        ),
        GaugeMetricFamily(
            "prewarm_api_tracking_up",
            "1 while this process receives Redis invalidations",
            value=int(gauges.tracking_up),
        ),
    ]


class _Collector:
    def __init__(self, store) -> None:
        self.store = store

    def collect(self):
        errors = GaugeMetricFamily("prewarm_scrape_error", "1 when a part of this scrape failed", labels=["part"])
        try:
            flush()
        except Exception:
            pass
        families, failed = declared_families(self.store)
        yield from families
        for part in failed:
            errors.add_metric([part], 1)
        try:
            count, oldest = queues.outbox()
            yield GaugeMetricFamily("prewarm_outbox_backlog", "Outbox rows waiting for the relay", value=count)
            yield GaugeMetricFamily(
                "prewarm_outbox_oldest_seconds", "Age of the oldest outbox row", value=oldest or 0.0
            )
        except Exception as exc:
            log.debug("outbox: %s", exc)
            errors.add_metric(["outbox"], 1)
        try:
            depths = queues.depths()
            queue = GaugeMetricFamily("prewarm_queue_depth", "Messages waiting in a Celery queue", labels=["queue"])
            for name, depth in depths.items():
                queue.add_metric([name], depth)
            yield queue
        except Exception as exc:
            log.debug("queues: %s", exc)
            errors.add_metric(["queues"], 1)
        try:
            yield from warmup_families()
        except Exception as exc:
            log.debug("warm-ups: %s", exc)
            errors.add_metric(["warmups"], 1)
        try:
            yield from local_families()
        except Exception as exc:
            log.debug("local gauges: %s", exc)
            errors.add_metric(["local"], 1)
        yield errors


def view_body() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(metrics.STORE))
    return generate_latest(registry)


# A scrape reads Redis, Postgres and the broker: kept a moment (scrapers come every 15 s or
# so; anonymous callers must not make each call cost that).
_body = Brief(lambda: view_body())


def metrics_response() -> HttpResponse:
    return HttpResponse(_body.get(), content_type=CONTENT_TYPE_LATEST)


@endpoint("GET")
def view(request):
    return metrics_response()
