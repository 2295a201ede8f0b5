"""Cache events: what changed (kind + ids + commit time) and how it becomes Celery work."""
from __future__ import annotations

import logging
from collections.abc import Iterable

from . import coalesce
from .app import INVALIDATE_QUEUE, app

log = logging.getLogger(__name__)

PROFILE = "profile"  # ids: profile ids (their subscriptions included)
REGION = "region"  # ids: region ids (licences, channel packages: the region's classes)
CHANNEL = "channel"  # ids: channel ids (the channel's EPG fragments)
KINDS = (PROFILE, REGION, CHANNEL)

REBUILD_TASK = "prewarm.rebuild"  # workers.tasks.rebuild
# One task rebuilds up to this many ids with one query set and one Redis pipeline.
BATCH = 500


def chunks(ids: list[int], size: int = BATCH) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def publish(kind: str, ids: Iterable[int], committed_at: float | None, *, relay: bool = False) -> int:
    """Queue rebuilds for the ids that have none queued; returns the number of tasks sent.

    `relay` marks the outbox relay's claims (see workers.coalesce for who trusts whom).
    Raises if Redis or the broker refuses: the caller keeps its event (outbox row) then.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    token = coalesce.new_token(relay=relay)
    fresh = coalesce.claim(kind, ids, token)
    sent: list[int] = []
    tasks = 0
    try:
        for chunk in chunks(fresh):
            # By name through the app: producers never import the consumer (workers.tasks).
            app.send_task(REBUILD_TASK, (kind, chunk, committed_at), queue=INVALIDATE_QUEUE)
            sent += chunk
            tasks += 1
    except Exception:
        unsent = fresh[len(sent) :]
        if relay:
            coalesce.unclaim(kind, unsent, token)  # its outbox rows stay: the relay's retry sends them
        else:
            # The relay may have skipped these ids for our claim and deleted its rows: leave
            # the claims stale, so the next producer takes them over and the sweeper re-sends.
            coalesce.abandon(kind, unsent, token)
        raise
    finally:
        coalesce.queued(kind, sent, token)
    return tasks
