"""`freshness`: after one write of each kind, the seconds until each peer serves the new value
(null when it did not within the plan's timeout: 60 s in a full run).

Each peer makes its own write in its own server process (POST /api/bench/write), so its
ORM hooks (cacheops, cachalot, django-redis's signals, Prewarm's) run as in that team's
app; `psql_external` is a write from outside Django (psql), made by the harness. The peers
write one after the other (each once the previous is fresh, or a second later) to different
programmes on a channel their viewer is entitled to, then each polls its own viewer's guide
for its programme's new title. The clock starts when the write has committed (the write's
own time is not counted) and includes the answer's own time: a naive peer is fresh after one
guide built from the ORM.
"""
from __future__ import annotations

import secrets
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta

import orjson

from ..results import Row
from . import WRITERS, workers
from .context import Context

EPG = "/api/v1/me/epg"
# The next peer writes once the previous one is fresh, or after this long (it goes on polling
# meanwhile): a naive peer's first poll is a whole guide built (~0.1 s of CPU), which would
# delay the other peers' polls if all wrote at once.
STAGGER_S = 1.0


def _poll_interval(elapsed: float) -> float:
    # Fine early (Prewarm's lag is milliseconds), coarse later (a TTL is minutes): a naive peer
    # builds the whole guide per request, and seven pollers share two cores with the servers.
    return 0.01 if elapsed < 1 else 0.05 if elapsed < 5 else 0.25


def _targets(ctx: Context):
    """The viewer, its guide's channel and day, and one programme of that day per peer."""
    from core.builders import local_day_bounds
    from core.models import Channel, Profile, Programme

    v = ctx.viewers[0]
    tz = Profile.objects.select_related("region").get(pk=v.profile_id).region.timezone
    from zoneinfo import ZoneInfo

    day = datetime.now(UTC).astimezone(ZoneInfo(tz)).date()
    start, end = local_day_bounds(day, tz)
    channel = Channel.objects.get(code=v.allowed)
    programmes = list(Programme.objects.filter(channel=channel, starts_at__gte=start, ends_at__lte=end)
                      .order_by("starts_at").values_list("id", "title"))
    if len(programmes) < len(ctx.peers):
        raise RuntimeError(f"channel {channel.code} has {len(programmes)} programmes on {day}: too few")
    return v, channel, start, end, programmes


def _psql_update(env: dict[str, str], programme: int, title: str) -> None:
    """The write no Django process sees: psql, as another service or an operator would."""
    from tools import devstack

    # From stdin, where psql quotes :'title' as a literal (-c would not interpolate it).
    subprocess.run([devstack.psql_binary(), env["DATABASE_URL"], "-v", "ON_ERROR_STOP=1", "-q", "-v", f"title={title}",
                    "-v", f"id={int(programme)}"], input="UPDATE core_programme SET title = :'title' WHERE id = :id;\n",
                   check=True, capture_output=True, text=True)


def _write(ctx: Context, peer: str, writer: str, programme: int, title: str, channel: int,
           starts_at: datetime) -> int:
    """Make one write for `peer`; returns the programme id written."""
    if writer == "psql_external":
        _psql_update(ctx.env, programme, title)
        return programme
    body = {"writer": writer, "programme": programme, "title": title}
    if writer == "bulk_create":
        body = {"writer": writer, "channel": channel, "title": title, "starts_at": starts_at.isoformat(),
                "ends_at": (starts_at + timedelta(minutes=1)).isoformat()}
    status, reply = ctx.servers[peer].request("POST", "/api/bench/write", body=orjson.dumps(body))
    if status != 200:
        raise RuntimeError(f"{peer} {writer}: {status} {reply[:200]!r}")
    return int(orjson.loads(reply).get("id") or programme)


def _until_fresh(ctx: Context, peer: str, token: str, title: str, timeout: float) -> float | None:
    marker = title.encode()
    server = ctx.servers[peer]
    t0 = time.monotonic()
    while True:
        elapsed = time.monotonic() - t0
        status, body = server.get(EPG, token)
        if status == 200 and marker in body:
            return time.monotonic() - t0
        if elapsed > timeout:
            return None
        time.sleep(_poll_interval(elapsed))


def _one(ctx: Context, peer: str, writer: str, v, programme: int, channel: int, starts_at: datetime,
         inserted: list[int]) -> float | None:
    title = f"fresh {writer} {peer} {secrets.token_hex(4)}"
    ctx.servers[peer].get(EPG, v.token)  # the peer holds the guide before the write
    ctx.servers[peer].get(EPG, v.token)
    written = _write(ctx, peer, writer, programme, title, channel, starts_at)
    if writer == "bulk_create":
        inserted.append(written)
    return _until_fresh(ctx, peer, v.token, title, ctx.plan.fresh_timeout)


def run(ctx: Context) -> None:
    from django.db import connection

    v, channel, start, end, programmes = _targets(ctx)
    mine = {peer: programmes[i] for i, peer in enumerate(ctx.peers)}
    # bulk_create: a new one-minute programme per peer, inside the day, 7 minutes apart and off
    # the guide's 5-minute grid (two programmes of a channel starting together have no order).
    slots = {peer: start + timedelta(minutes=30 + 7 * i, seconds=7) for i, peer in enumerate(ctx.peers)}
    inserted: list[int] = []
    timings: dict[str, dict[str, float | None]] = {}
    pipeline = workers.start_pipeline(ctx)  # Prewarm's invalidation workers and relay
    try:
        for writer in WRITERS:
            with ThreadPoolExecutor(len(ctx.peers)) as pool:
                futures = {}
                for peer in ctx.peers:
                    futures[peer] = pool.submit(_one, ctx, peer, writer, v, mine[peer][0], channel.id, slots[peer],
                                                inserted)
                    wait([futures[peer]], timeout=STAGGER_S)
                for peer, fut in futures.items():
                    try:
                        seconds = fut.result()
                    except Exception as exc:
                        seconds = None
                        ctx.results.notes.append(f"freshness: {peer} {writer}: {exc}")
                    timings.setdefault(writer, {})[peer] = seconds
                    ctx.results.add(Row("freshness", peer, writer, seconds, "s"))
            line = "  ".join(f"{p} {'never' if s is None else f'{s:.3f}s'}" for p, s in timings[writer].items())
            print(f"  {writer}: {line}", flush=True)
    finally:
        with connection.cursor() as cur:  # put the data back (Prewarm's triggers follow it)
            for pk, title in mine.values():
                cur.execute("UPDATE core_programme SET title = %s WHERE id = %s", [title, pk])
            if inserted:
                cur.execute("DELETE FROM core_programme WHERE id = ANY(%s)", [inserted])
        workers.stop_pipeline(pipeline)
    ctx.results.samples["freshness"] = timings
    ctx.results.notes.append(
        f"freshness: one write per peer and writer kind at the same moment, each to its own programme on"
        f" channel {channel.code} today; polled {EPG} from commit until the new title shows (10 ms apart for"
        f" 1 s, then 50 ms, then 250 ms); never = not within {ctx.plan.fresh_timeout:g} s")
