"""Bulk warm-up: rebuild whole scopes in id spans, in parallel, resumable.

Profile ids are cut into fixed spans; each finished span is recorded in Redis, so an
interrupted warm-up continues where it stopped (and two runs of one scope share the work).
"""
from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, connections

from . import keys, redis_conn, services

SPAN = 20_000  # profile ids per unit of work (and of resumability)
BATCH = 2_000  # profiles per query set and Redis pipeline
DONE_TTL = 7 * 24 * 3600


@dataclass
class Progress:
    total: int
    done: int = 0
    started: float = 0.0

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate else None


def _ids(span: int, region_ids: list[int] | None) -> list[int]:
    lo, hi = span * SPAN, (span + 1) * SPAN
    with connection.cursor() as cur:
        if region_ids is None:
            cur.execute("SELECT id FROM core_profile WHERE id >= %s AND id < %s ORDER BY id", [lo, hi])
        else:
            cur.execute(
                "SELECT id FROM core_profile WHERE id >= %s AND id < %s AND region_id = ANY(%s) ORDER BY id",
                [lo, hi, region_ids],
            )
        return [r[0] for r in cur.fetchall()]


def _warm_span(job: tuple[str, int, list[int] | None]) -> int:
    scope, span, region_ids = job
    ids = _ids(span, region_ids)
    for i in range(0, len(ids), BATCH):
        services.rebuild_profiles(ids[i : i + BATCH])
    redis_conn.client().sadd(keys.warm_done_key(scope), span)
    redis_conn.client().expire(keys.warm_done_key(scope), DONE_TTL)
    return len(ids)


def _child_init() -> None:
    # Forked children must not share the parent's sockets.
    connections.close_all()
    redis_conn.reset()


def pending_spans(scope: str, region_ids: list[int] | None, *, resume: bool) -> tuple[list[int], int]:
    """Spans still to do and the number of profiles in them."""
    if not resume:
        redis_conn.client().delete(keys.warm_done_key(scope))
    done = {int(x) for x in redis_conn.client().smembers(keys.warm_done_key(scope))}
    with connection.cursor() as cur:
        sql = "SELECT id / %s AS span, count(*) FROM core_profile"
        params: list = [SPAN]
        if region_ids is not None:
            sql += " WHERE region_id = ANY(%s)"
            params.append(region_ids)
        cur.execute(sql + " GROUP BY 1 ORDER BY 1", params)
        counts = {span: n for span, n in cur.fetchall() if span not in done}
    return sorted(counts), sum(counts.values())


def warm_profiles(
    scope: str,
    region_ids: list[int] | None,
    *,
    jobs: int = 1,
    resume: bool = True,
    on_progress: Callable[[Progress], None] = lambda p: None,
) -> Progress:
    """Rebuild every profile in scope with `jobs` processes; safe while invalidations flow
    (versioned writes never let a warm-up overwrite a newer invalidation)."""
    spans, total = pending_spans(scope, region_ids, resume=resume)
    progress = Progress(total=total, started=time.monotonic())
    work = [(scope, s, region_ids) for s in spans]
    if jobs <= 1:
        results = map(_warm_span, work)
        for n in results:
            progress.done += n
            on_progress(progress)
    else:
        connections.close_all()
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(jobs, initializer=_child_init) as pool:
            for n in pool.imap_unordered(_warm_span, work):
                progress.done += n
                on_progress(progress)
    redis_conn.client().delete(keys.warm_done_key(scope))
    return progress
