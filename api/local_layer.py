"""The process's in-process layer: one LocalCache kept exact by one Tracker, built on first use.

The one place that knows all the parts (settings, the local cache, the tracker, the metrics
flush tick), so that none of them imports another to find the process's instance.
"""
from __future__ import annotations

import os
import threading

from django.conf import settings

from . import cluster, metrics
from .local_cache import LocalCache
from .tracking import Tracker

START_WAIT = 0.2  # seconds: the first requests can already use the local layer

_state: dict = {}
_state_lock = threading.Lock()


def get() -> Tracker:
    """This process's tracker, started on first use (so after any fork: granian workers)."""
    tracker = _state.get("tracker")
    if tracker is not None:
        return tracker
    return _start()


def current() -> Tracker | None:
    """This process's tracker if it has started (never starts one)."""
    return _state.get("tracker")


def _start() -> Tracker:
    with _state_lock:
        if _state.get("tracker") is not None:
            return _state["tracker"]
        entries = getattr(settings, "PREWARM_API_LOCAL_ENTRIES", 100_000)
        megabytes = getattr(settings, "PREWARM_API_LOCAL_MB", 256)
        cache = LocalCache(entries, megabytes * 1024 * 1024)
        if settings.PREWARM_REDIS_CLUSTER:
            tracker = cluster.ClusterTracker(cluster.slot_map(settings.REDIS_URL), cache, metrics.flush_quietly)
        else:
            tracker = Tracker(settings.REDIS_URL, cache, on_tick=metrics.flush_quietly)
        _state["tracker"] = tracker
        tracker.start(wait=START_WAIT)
        return tracker


def epg_key(class_id: str, day: str) -> tuple[str, str, str]:
    """The cache's key of a class's assembled guide for a local day (a profile's is its id, a
    class's its Redis key): one spelling for the reads that store it and those that serve it."""
    return ("epg", class_id, day)


def reset() -> None:
    """Stop the tracker and forget it (tests that point at another Redis)."""
    with _state_lock:
        tracker = _state.pop("tracker", None)
    if tracker is not None:
        tracker.stop()


def gauges() -> metrics.LocalGauges:
    """This process's local-cache gauges, for /metrics. Through get(), not a tracker captured
    earlier: web workers fork after the app loads, and a scrape starts the tracker as a
    request would."""
    tracker = get()
    return metrics.LocalGauges(len(tracker.cache), tracker.cache.size_bytes, tracker.alive)


def _forget_after_fork() -> None:
    # The thread did not survive the fork and the socket is the parent's: start afresh. A
    # lock held by another parent thread at the fork would stay held here forever: a new one.
    global _state_lock
    _state.clear()
    _state_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
