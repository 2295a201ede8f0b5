"""`memory`: Redis bytes per profile (viewer) and per EPG day, per peer, weighed with MEMORY
USAGE over every key the peer wrote, after each viewer of the run asked for its guide and a
playback check (asked again here, just before weighing).

Prewarm: a profile hash per viewer, and per day one fragment per channel and time zone,
shared by every viewer. The caching peers hold what they cache per viewer (django-redis:
each answer) or per query (cacheops, cachalot: querysets, some shared), so their total is
divided by the viewers served.
"""
from __future__ import annotations

from datetime import UTC, datetime

import redis

from .. import peers
from ..results import Row
from .api import CACHING, EPG, PLAYBACK, _prefill
from .context import Context

SCAN_COUNT = 1000
MILLION = 1_000_000


def weigh(url: str, prefix: str | None) -> tuple[int, int]:
    """(bytes, keys) of every key in the db at `url`, or under `prefix` there."""
    r = redis.Redis.from_url(url)
    total = keys = 0
    try:
        batch = []
        for key in r.scan_iter(match=f"{prefix}:*" if prefix else None, count=SCAN_COUNT):
            batch.append(key)
            if len(batch) == SCAN_COUNT:
                total += _sizes(r, batch)
                keys += len(batch)
                batch = []
        total += _sizes(r, batch)
        keys += len(batch)
    finally:
        r.close()
    return total, keys


def _sizes(r: redis.Redis, batch: list[bytes]) -> int:
    pipe = r.pipeline(transaction=False)
    for key in batch:
        pipe.memory_usage(key, samples=0)
    return sum(s or 0 for s in pipe.execute())


def _prewarm_epg_day() -> tuple[int, int]:
    """(bytes, fragments) of today's guide in every time zone in use, for every channel."""
    from core import keys, services
    from core.models import Channel, Region
    from core.redis_conn import client

    now = datetime.now(UTC)
    channel_ids = list(Channel.objects.values_list("id", flat=True))
    pipe = client().pipeline(transaction=False)
    n = 0
    for tz in set(Region.objects.values_list("timezone", flat=True)):
        day = services.epg_days(tz, now)[1].isoformat()  # today: yesterday is first
        for cid in channel_ids:
            pipe.memory_usage(keys.epg_fragment_key(tz, day, cid), samples=0)
            n += 1
    sizes = [s for s in pipe.execute() if s]
    return sum(sizes), len(sizes)


def run(ctx: Context) -> None:
    from .. import pipeline as pl

    res = ctx.results
    served = len(ctx.viewers)
    # Every viewer's answers asked for once more just before weighing: a cache whose entries
    # expired since the api scenario (django-redis keeps them 5 minutes) would weigh nothing.
    reqs = [(EPG, v.token) for v in ctx.viewers] + [(PLAYBACK + v.allowed, v.token) for v in ctx.viewers]
    for name in ctx.peers:
        if name in CACHING or name == "prewarm":  # the naive peers store nothing
            _prefill(ctx.servers[name], reqs)
    for name in ctx.peers:
        if name == "prewarm":
            per_profile = pl.memory()["bytes_per_profile"]
            day_bytes, fragments = _prewarm_epg_day()
            res.add(Row("memory", name, "bytes_per_profile", per_profile, "B"))
            res.add(Row("memory", name, "bytes_per_epg_day", day_bytes, "B"))
            res.add(Row("memory", name, "bytes_1m_viewers_1_day", per_profile * MILLION + day_bytes, "B"))
            res.notes.append(f"memory: prewarm's EPG day is {fragments} fragments (channels x time zones),"
                             " shared by every viewer; its class entries (a few hundred) are left out")
            continue
        url, prefix = peers.redis_scope(name, ctx.env)
        total, nkeys = weigh(url, prefix)
        per_profile = total / served
        res.add(Row("memory", name, "bytes_per_profile", per_profile, "B"))
        res.add(Row("memory", name, "bytes_1m_viewers_1_day", per_profile * MILLION, "B"))
        res.add(Row("memory", name, "keys", nkeys, "keys"))
    res.notes.append(f"memory: a caching peer's bytes are its whole Redis db (or prefix) after {served} viewers"
                     " asked for today's guide and a playback check, divided by those viewers; x 1M for the"
                     " 1M-viewer figure (its cache grows with every viewer, where Prewarm's guide is shared)")
