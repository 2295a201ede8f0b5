"""Time-driven tasks: exact rebuilds at the moments entitlement changes without a write, and the
rolling verification that proves the cache holds what Postgres says."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.db import connection

from core import drift, services, verify
from workers import events
from workers.app import WARMUP_QUEUE
from workers.tasks import RETRY, rebuild

from .beat import REFRESH_SECONDS, VERIFY_SECONDS

# Look a little past the next run so a late beat tick never leaves a gap; stay well under
# the Redis broker's visibility timeout, or a worker holding an ETA task sees it re-delivered.
LOOKAHEAD = timedelta(seconds=REFRESH_SECONDS + 60)


def due_edges(now: datetime, until: datetime) -> dict[tuple[str, datetime], set[int]]:
    """(kind, moment) -> ids whose subscription or licence window opens or closes in (now, until]."""
    due: dict[tuple[str, datetime], set[int]] = defaultdict(set)
    with connection.cursor() as cur:
        cur.execute(
            """SELECT profile_id, starts_at FROM core_subscription WHERE starts_at > %s AND starts_at <= %s
               UNION ALL
               SELECT profile_id, expires_at FROM core_subscription WHERE expires_at > %s AND expires_at <= %s""",
            [now, until, now, until],
        )
        for pid, moment in cur.fetchall():
            due[(events.PROFILE, moment)].add(pid)
        cur.execute(
            """SELECT region_id, valid_from FROM core_licence WHERE valid_from > %s AND valid_from <= %s
               UNION ALL
               SELECT region_id, valid_until FROM core_licence WHERE valid_until > %s AND valid_until <= %s""",
            [now, until, now, until],
        )
        for rid, moment in cur.fetchall():
            due[(events.REGION, moment)].add(rid)
    return due


@shared_task(name="prewarm.schedule_due", **RETRY)
def schedule_due() -> int:
    """Queue one rebuild per (kind, moment, batch) with an ETA at that moment."""
    now = services.utcnow()
    sent = 0
    for (kind, moment), ids in sorted(due_edges(now, now + LOOKAHEAD).items(), key=lambda kv: kv[0][1]):
        for chunk in events.chunks(sorted(ids)):
            # committed_at = the moment: lag then measures how late the flip landed.
            rebuild.apply_async((kind, chunk, moment.timestamp()), eta=moment)
            sent += 1
    return sent


@shared_task(name="prewarm.epg_rollover", queue=WARMUP_QUEUE, **RETRY)
def epg_rollover() -> int:
    """Rebuild every channel's fragments so each zone's newest kept day exists."""
    from core.models import Channel

    ids = list(Channel.objects.values_list("id", flat=True))
    for chunk in events.chunks(ids, 50):
        services.rebuild_epg(chunk)
    return len(ids)


def verify_slices() -> int:
    """How many VERIFY_SECONDS slices one cycle of PREWARM_VERIFY_CYCLE_HOURS has."""
    return drift.slices_per_cycle(settings.PREWARM_VERIFY_CYCLE_HOURS * 3600, VERIFY_SECONDS)


@shared_task(name="prewarm.verify_slice", queue=WARMUP_QUEUE, **RETRY)
def verify_slice() -> dict:
    """Verify and repair the next slice of profile ids (and, once a cycle, every class and
    fragment); drift is counted in prewarm_verify_drift_total and logged as warnings."""
    current, report = verify.verify_slice(slices=verify_slices())
    if report is None:
        return {"slice": None}
    return {"slice": [current.start, current.end], "cycle_done": current.last, "drift": report.counts()}
