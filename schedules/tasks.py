"""Time-driven tasks: exact rebuilds at the moments entitlement changes without a write, and the
rolling verification that proves the cache holds what Postgres says."""
from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.db import connection

from core import drift, keys, selectors, services, verify
from core.redis_conn import client
from workers import edges, events
from workers.app import WARMUP_QUEUE
from workers.tasks import RETRY

from .beat import VERIFY_SECONDS

# Beat down for longer than this leaves older edges to the verifier (and to the API, which
# treats an entry past its `valid_until` as a miss).
MAX_CATCH_UP = timedelta(days=1)


def due_edges(start: datetime, until: datetime) -> dict[tuple[str, datetime], set[int]]:
    """(kind, moment) -> ids whose subscription or licence window opens or closes in (start, until]."""
    due: dict[tuple[str, datetime], set[int]] = defaultdict(set)
    with connection.cursor() as cur:
        cur.execute(
            """SELECT profile_id, starts_at FROM core_subscription WHERE starts_at > %s AND starts_at <= %s
               UNION ALL
               SELECT profile_id, expires_at FROM core_subscription WHERE expires_at > %s AND expires_at <= %s""",
            [start, until, start, until],
        )
        for pid, moment in cur.fetchall():
            due[(events.PROFILE, moment)].add(pid)
        cur.execute(
            """SELECT region_id, valid_from FROM core_licence WHERE valid_from > %s AND valid_from <= %s
               UNION ALL
               SELECT region_id, valid_until FROM core_licence WHERE valid_until > %s AND valid_until <= %s""",
            [start, until, start, until],
        )
        for rid, moment in cur.fetchall():
            due[(events.REGION, moment)].add(rid)
    return due


def scan(now: datetime) -> int:
    """Queue the edges from where the last scan ended up to HORIZON ahead; returns tasks sent.

    Anchored at the last scan's end, not at `now`: a late tick (or one after a pause) queues
    the edges it would have skipped, at once (an ETA in the past runs now).
    """
    r = client()
    scanned = r.get(keys.edges_scanned_key())
    start = datetime.fromtimestamp(float(scanned), UTC) if scanned is not None else now - edges.HORIZON
    start = max(start, now - MAX_CATCH_UP)
    until = now + edges.HORIZON
    sent = 0
    for (kind, moment), ids in sorted(due_edges(start, until).items(), key=lambda kv: kv[0][1]):
        sent += edges.queue(kind, moment, ids)
    if until.timestamp() > float(scanned or 0):
        r.set(keys.edges_scanned_key(), until.timestamp())
    return sent


@shared_task(name="prewarm.schedule_due", **RETRY)
def schedule_due() -> int:
    """Queue one rebuild per (kind, moment, batch) with an ETA at that moment."""
    return scan(selectors.db_now())


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
