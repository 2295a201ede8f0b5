"""Celery tasks: thin wrappers that mark their ids running, rebuild, and record lag."""
from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import redis
from celery import shared_task
from django.db import InterfaceError, OperationalError

from core import metrics, services

from . import coalesce, edges, events, lag
from .app import INVALIDATE_QUEUE

log = logging.getLogger(__name__)

TRANSIENT = (redis.ConnectionError, redis.TimeoutError, OperationalError, InterfaceError)
RETRY = dict(autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=60, retry_jitter=True, max_retries=30)

_REBUILDERS = {
    events.PROFILE: services.rebuild_profiles,
    events.REGION: services.rebuild_regions,
    events.CHANNEL: services.rebuild_epg,
}


@shared_task(name=events.REBUILD_TASK, queue=INVALIDATE_QUEUE, **RETRY)
def rebuild(
    kind: str,
    ids: list[int],
    committed_at: float | None = None,
    not_before: float | None = None,
    seen_at: float | None = None,
    sent_at: float | None = None,
    ticket: str | None = None,
) -> dict:
    """Rebuild the entries of one event batch (invalidation queue, latency first).

    `not_before` (an edge's moment, workers.edges): decide time windows as of that moment at
    least, even when Postgres' clock is behind the worker's that ran the ETA task.
    `seen_at`, `sent_at`: when the relay took up the event and when it was published (the
    pipeline's hops, workers.lag). `ticket`: counts this task as waiting until it starts.
    """
    refused = events.bad_input(kind, ids, not_before)
    if refused:
        # A message not from our producers (the broker takes JSON from anyone who can reach
        # it): its kind and ids would name keys. Retrying cannot mend it.
        log.error("refusing a %s task: %s", events.REBUILD_TASK, refused)
        return {"refused": refused}
    # This task's metrics and its markers' release: one round trip at the end.
    with metrics.STORE.deferred() as finish:
        stamps = {"committed": committed_at, "seen": seen_at, "sent": sent_at, "started": time.time()}
        return _rebuild(kind, ids, committed_at, not_before, ticket, stamps, finish)


def _rebuild(kind, ids, committed_at, not_before, ticket, stamps: dict, finish) -> dict:
    if not_before is not None:
        edges.started(kind, not_before, ids)
    # Running markers first: an event from now on queues another rebuild after this one,
    # and if this process dies mid-run the sweeper re-queues the ids (workers.coalesce).
    run = coalesce.start(kind, ids, ticket=ticket)
    try:
        floor = datetime.fromtimestamp(not_before, UTC) if not_before is not None else None
        outcome = _REBUILDERS[kind](ids, not_before=floor)
        stamps.update(read=outcome.read_at, written=time.time())
        edges.queue_built(kind, outcome)
    except Exception:
        # This attempt may be the last (an error that is not retried, retries used up, a
        # soft time limit): leave the ids for the sweeper. A retry marks them running again.
        try:
            coalesce.failed(kind, ids, run)
        except Exception:
            log.warning("could not mark %d %s ids for the sweeper", len(ids), kind, exc_info=True)
        raise
    # The entries are written: if releasing the markers fails (logged by the deferred block),
    # they only cost one more rebuild, by the sweeper.
    coalesce.done(kind, ids, run, pipe=finish)
    count = max(1, len(ids))
    lag.observe(committed_at, count=count, now=stamps["written"], edge=not_before is not None)
    lag.observe_hops(stamps, count=count)
    return outcome.counts()


@shared_task(name="prewarm.sweep_dirty", queue=INVALIDATE_QUEUE, **RETRY)
def sweep_dirty() -> int:
    """Re-queue ids whose marker outlived its state: a producer died mid-send, a task was
    lost, a run died (worker killed, hard time limit) or failed; and time-edge tasks that
    never started (they have no markers: workers.edges keeps their ids until they start)."""
    sent = 0
    for kind in events.KINDS:
        stuck = coalesce.stale(kind)
        if stuck:
            log.warning("re-queueing %d stale %s markers", len(stuck), kind)
            sent += events.publish(kind, stuck, None)
    lost = edges.sweep_lost(time.time())
    if lost:
        log.warning("re-sending %d time-edge tasks that never started", lost)
    return sent + lost


