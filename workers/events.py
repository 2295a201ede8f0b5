"""Cache events: what changed (kind + ids + commit time) and how it becomes Celery work."""
from __future__ import annotations

import logging
from collections.abc import Iterable

from . import coalesce

log = logging.getLogger(__name__)

PROFILE = "profile"  # ids: profile ids (their subscriptions included)
REGION = "region"  # ids: region ids (licences, channel packages: the region's classes)
CHANNEL = "channel"  # ids: channel ids (the channel's EPG fragments)
KINDS = (PROFILE, REGION, CHANNEL)

# One task rebuilds up to this many ids with one query set and one Redis pipeline.
BATCH = 500


def chunks(ids: list[int], size: int = BATCH) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def publish(kind: str, ids: Iterable[int], committed_at: float | None, *, coalesce_queued: bool = True) -> int:
    """Queue rebuilds for ids; returns the number of tasks sent.

    With `coalesce_queued` (the signal path) ids that already have a rebuild queued are
    skipped. The relay passes False: it is the delivery guarantee, so it never trusts a
    claim that a crashed producer may have left without a task behind it; it still marks
    its ids so the signal path coalesces against its tasks.
    Raises if Redis or the broker refuses: the caller keeps its event (outbox row) then.
    """
    from .tasks import rebuild

    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    if coalesce_queued:
        fresh = coalesce.claim(kind, ids)
    else:
        fresh = coalesce.mark(kind, ids)
    sent = 0
    for chunk in chunks(fresh):
        try:
            rebuild.apply_async((kind, chunk, committed_at))
        except Exception:
            # Not queued: un-claim so the next event (or the relay's retry) queues it.
            coalesce.release(kind, chunk)
            raise
        sent += 1
    return sent
