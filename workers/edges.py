"""Time edges: moments when an entry's contents change with no write (a subscription or a
licence window opens or closes), rebuilt by ETA tasks at that moment.

Beat's `schedule_due` scans Postgres for the edges of the next HORIZON, starting where its
last scan ended (so a late tick skips nothing). An edge created after the scan that covered
it is scheduled by the rebuild its own write caused: that rebuild writes the entry's next
edge as `valid_until`, and queues it here when it falls inside HORIZON. Both ask `queue`,
which sends each (kind, moment, id) once while it waits: an edge task takes its ids off
as it starts (`started`), so an entry written after that with the same, now past, edge
(built from rows read before the moment, or a class the task did not know yet) queues
it again, and it runs at once.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from core import keys
from core.redis_conn import client

from . import coalesce, events
from .app import INVALIDATE_QUEUE, app

log = logging.getLogger(__name__)

REFRESH_SECONDS = 300  # beat's scan interval (the seed's re-check interval)
# Look a little past the next scan so a late tick leaves no gap; stay well under the Redis
# broker's visibility timeout, or a worker holding an ETA task sees it re-delivered.
HORIZON = timedelta(seconds=REFRESH_SECONDS + 60)


def queue(kind: str, moment: datetime, ids: Iterable[int]) -> int:
    """Queue rebuilds of `ids` at `moment`, skipping ids already queued for it; returns tasks sent."""
    ids = sorted(set(ids))
    if not ids:
        return 0
    second = int(moment.timestamp())
    key = keys.edge_key(kind, second)
    pipe = client().pipeline(transaction=False)
    for i in ids:
        pipe.sadd(key, i)
    pipe.expireat(key, moment + HORIZON)
    pipe.zadd(keys.edges_pending_key(), {_member(kind, second): moment.timestamp()}, nx=True)
    fresh = [i for i, added in zip(ids, pipe.execute()) if added]
    at = moment.timestamp()
    sent = 0
    for chunk in events.chunks(fresh):
        # committed_at = the moment: the rebuild measures how late the flip landed (its own
        # histogram, EDGE_LATENESS); not_before: it decides windows at the moment at least,
        # whatever its clock says.
        try:
            app.send_task(
                events.REBUILD_TASK, (kind, chunk, at), {"not_before": at}, queue=INVALIDATE_QUEUE, eta=moment
            )
        except Exception:
            # Not sent: forget these ids for the moment, or the next scan or rebuild that
            # asks would take them for queued and skip them.
            client().srem(key, *fresh[sent * events.BATCH :])
            raise
        sent += 1
    return sent


def started(kind: str, at: float, ids: Iterable[int]) -> None:
    """An edge task for `ids` at `at` is starting: queueing them for `at` sends another."""
    if ids:
        client().srem(keys.edge_key(kind, int(at)), *ids)


def queue_built(kind: str, outcome) -> int:
    """Queue the edges a rebuild's entries carry (a `core.services.Outcome` of `kind`), and
    those of the class entries a profile rebuild built on the way, as region edges."""
    sent = queue_soon(kind, outcome.edges, outcome.now)
    return sent + queue_soon(events.REGION, outcome.class_edges, outcome.now)


def queue_soon(kind: str, edges: dict[int, set[int]], now: datetime) -> int:
    """Queue the edges (epoch second -> ids) that fall within HORIZON of `now`."""
    if not edges:
        return 0
    until = now + HORIZON
    sent = 0
    for at, ids in sorted(edges.items()):
        moment = datetime.fromtimestamp(at, UTC)
        if moment <= until:
            sent += queue(kind, moment, ids)
    return sent


# An edge task not started this long after it was due (or last sent again) was lost: kombu's
# BRPOP took it as a broker connection died, or the broker lost it. As for queued markers.
LOST_AFTER_SECONDS = coalesce.QUEUED_STALE_MS / 1000


def _member(kind: str, at: int) -> str:
    return f"{kind}:{at}"


def due(now_s: float) -> list[tuple[str, int, list[int]]]:
    """(kind, at, ids) of the edges due by `now_s` that no task has started on yet;
    forgets edges whose set is gone (every id started, or past HORIZON)."""
    index = keys.edges_pending_key()
    r = client()
    members = r.zrangebyscore(index, "-inf", now_s)
    if not members:
        return []
    pipe = r.pipeline(transaction=False)
    parsed = []
    out, done = [], []
    for member in members:
        kind, _, at = member.decode("utf-8", "replace").rpartition(":")
        if kind not in events.KINDS or not (at.isascii() and at.isdigit() and len(at) <= 12):
            # Not one we wrote: it would name a key, and fail every sweep after this one.
            log.error("forgetting a malformed edge %r", member[:80])
            done.append(member)
            continue
        parsed.append((member, kind, int(at)))
        pipe.smembers(keys.edge_key(kind, int(at)))
    for (member, kind, at), ids in zip(parsed, pipe.execute()):
        if ids:
            out.append((kind, at, sorted(int(i) for i in ids)))
        else:
            done.append(member)
    if done:
        r.zrem(index, *done)
    return out


def sweep_lost(now_s: float) -> int:
    """Send again the edges whose task should have started LOST_AFTER_SECONDS ago (beat's
    sweeper); each is then given as long again before the next try. Returns tasks sent."""
    sent = 0
    for kind, at, ids in due(now_s - LOST_AFTER_SECONDS):
        for chunk in events.chunks(ids):
            app.send_task(events.REBUILD_TASK, (kind, chunk, float(at)), {"not_before": float(at)},
                          queue=INVALIDATE_QUEUE)
            sent += 1
        client().zadd(keys.edges_pending_key(), {_member(kind, at): now_s}, xx=True)
    return sent
