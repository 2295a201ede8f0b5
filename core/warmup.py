"""Bulk warm-up: rebuild whole scopes in batches, resumable from a cursor kept in Redis."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.db import connection

from . import keys, rebuild
from .redis_conn import client

BATCH = 2000


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


def profile_batches(region_ids: list[int] | None, after_id: int, batch: int = BATCH) -> Iterator[list[int]]:
    """Profile ids in id order, after `after_id`, optionally limited to some regions."""
    last = after_id
    while True:
        with connection.cursor() as cur:
            if region_ids is None:
                cur.execute("SELECT id FROM core_profile WHERE id > %s ORDER BY id LIMIT %s", [last, batch])
            else:
                cur.execute(
                    "SELECT id FROM core_profile WHERE id > %s AND region_id = ANY(%s) ORDER BY id LIMIT %s",
                    [last, region_ids, batch],
                )
            ids = [r[0] for r in cur.fetchall()]
        if not ids:
            return
        yield ids
        last = ids[-1]


def count_profiles(region_ids: list[int] | None, after_id: int) -> int:
    with connection.cursor() as cur:
        if region_ids is None:
            cur.execute("SELECT count(*) FROM core_profile WHERE id > %s", [after_id])
        else:
            cur.execute("SELECT count(*) FROM core_profile WHERE id > %s AND region_id = ANY(%s)", [after_id, region_ids])
        return cur.fetchone()[0]


def cursor_key(scope: str) -> str:
    return keys.warm_cursor_key(scope)


def warm_profiles(
    scope: str,
    region_ids: list[int] | None,
    *,
    resume: bool = True,
    on_progress: Callable[[Progress], None] = lambda p: None,
) -> Progress:
    """Rebuild every profile in scope; the cursor lets an interrupted run continue."""
    after = int(client().get(cursor_key(scope)) or 0) if resume else 0
    progress = Progress(total=count_profiles(region_ids, after), started=time.monotonic())
    for ids in profile_batches(region_ids, after):
        rebuild.rebuild_profiles(ids)
        progress.done += len(ids)
        client().set(cursor_key(scope), ids[-1], ex=7 * 24 * 3600)
        on_progress(progress)
    client().delete(cursor_key(scope))
    return progress
