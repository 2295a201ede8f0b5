"""Cache events: what changed (kind + ids + commit time) and how it becomes Celery work."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from django.conf import settings

from . import broker, coalesce
from .app import INVALIDATE_QUEUE, app

log = logging.getLogger(__name__)

PROFILE = "profile"  # ids: profile ids (their subscriptions included)
REGION = "region"  # ids: region ids (licences, channel packages: the region's classes)
CHANNEL = "channel"  # ids: channel ids (the channel's EPG fragments)
KINDS = (PROFILE, REGION, CHANNEL)

REBUILD_TASK = "prewarm.rebuild"  # workers.tasks.rebuild
# One task rebuilds up to this many ids with one query set and one Redis pipeline.
BATCH = 500
# Ids claimed per script call. A script blocks Redis while it runs (2-4 us per id here): a
# region-wide event of a million ids claimed in one call held it for 3-5 s (longer than the
# client's socket timeout, so the publish failed and was retried for ever). 1,000 ids keep
# a call to about 2 ms (p99 under 10 ms on a busy 2-core machine), two tasks' worth each.
CLAIM_CHUNK = 1_000


# What logs and monitors show of a task's arguments. Celery would build a repr of every id
# list (~0.1 ms a publish, cut at 1 KB anyway): name the kind and the id range instead.
_KWARGSREPR = "{seen_at, sent_at, ticket}"


def _argsrepr(kind: str, ids: list[int]) -> str:
    return f"({kind!r}, [{ids[0]}..{ids[-1]}] {len(ids)} ids)" if ids else f"({kind!r}, [])"


def is_id(value: object) -> bool:
    """A row id as Postgres keeps them (bigint), above 0; not a bool, a float or a string."""
    return type(value) is int and 0 < value < 2**63


def bad_input(kind: object, ids: object, not_before: object = None) -> str | None:
    """Why a rebuild's arguments are not an event (None when they are): they name keys."""
    if kind not in KINDS:
        return f"unknown kind {kind!r:.40}"
    if not isinstance(ids, list) or not all(is_id(i) for i in ids):
        return f"ids must be a list of row ids, not {ids!r:.80}"
    if not_before is not None and (type(not_before) not in (int, float) or not 0 <= not_before < 2**40):
        return f"not_before must be epoch seconds, not {not_before!r:.40}"
    return None


def chunks(ids: list[int], size: int = BATCH) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def publish(
    kind: str,
    ids: Iterable[int],
    committed_at: float | None,
    *,
    relay: bool = False,
    seen_at: float | None = None,
    defer_to_relay: bool = False,
) -> int:
    """Queue rebuilds for the ids that have none queued; returns the number of tasks sent.

    Claims CLAIM_CHUNK ids at a time and sends full tasks of BATCH as it goes (ids claimed
    but not yet sent wait for the next slice, so skipped ids do not leave tasks half empty).
    `relay` marks the outbox relay's claims (see workers.coalesce for who trusts whom);
    `seen_at`, when the relay took up the rows (a task stamps its hops: workers.lag).
    `defer_to_relay` (the signal path, whose change also reached the outbox): send nothing
    while PREWARM_WAITING_TASKS tasks wait unstarted, and let the relay batch the change.
    Raises if Redis or the broker refuses: the caller keeps its event (outbox row) then.
    Ids sent before the failure stay queued; ids claimed and not sent are given back; ids
    not yet claimed were never marked.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    token = coalesce.new_token(relay=relay)
    limit = settings.PREWARM_WAITING_TASKS if defer_to_relay else 0
    ids = sorted(set(ids))
    held: list[int] = []  # claimed by this producer, not sent yet
    unsent: list[str] = []  # the ticket registered for the next task, until it is sent
    tasks = 0
    try:
        for start in range(0, len(ids), CLAIM_CHUNK):
            claimed = coalesce.claim(kind, ids[start : start + CLAIM_CHUNK], token, waiting_limit=limit)
            if claimed and tasks == 0:
                unsent = [coalesce.ticket(token, 0)]  # the claim registered it
            held += claimed
            last = start + CLAIM_CHUNK >= len(ids)
            sent: list[int] = []
            try:
                while len(held) >= BATCH or (last and held):
                    ticket = coalesce.ticket(token, tasks)
                    if tasks:
                        coalesce.register([ticket])
                        unsent = [ticket]
                    # By name through the app: producers never import the consumer (workers.tasks).
                    batch = held[:BATCH]
                    extra = {"seen_at": seen_at, "sent_at": time.time(), "ticket": ticket}
                    broker.send_task(app, REBUILD_TASK, (kind, batch, committed_at), extra, queue=INVALIDATE_QUEUE,
                                     argsrepr=_argsrepr(kind, batch), kwargsrepr=_KWARGSREPR)
                    unsent = []
                    sent += batch
                    del held[:BATCH]
                    tasks += 1
            finally:
                coalesce.queued(kind, sent, token)
    except Exception:
        if relay:
            coalesce.unclaim(kind, held, token, unsent)  # its outbox rows stay: the relay's retry sends them
        else:
            # The relay may have skipped these ids for our claim and deleted its rows: leave
            # the claims stale, so the next producer takes them over and the sweeper re-sends.
            coalesce.abandon(kind, held, token, unsent)
        raise
    return tasks
