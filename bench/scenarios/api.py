"""`api`: req/s, p50 and p99 of each peer's EPG and playback beside the constant-bytes floors,
in interleaved passes on one server configuration (granian, the Procfile's flags), loopback wrk.

Every peer is first checked to answer the same bytes as `naive` for the same viewers and
days (no peer wins by doing less), then warmed: every viewer's answers requested once, so
the caching peers are measured at their hit ratio, not while filling. After each cell the
harness waits for idle CPUs, so work a slow server queued is not measured in the next cell. prewarm-cold misses
on every read by construction.
"""
from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from .. import api as wrkbench
from .. import common, peers
from ..peers import check
from ..results import Row, over_passes
from . import profiling, servers
from .context import Context

EPG = "/api/v1/me/epg"
PLAYBACK = "/api/v1/me/playback/"
PROFILE = "/api/v1/me/profile"
FLOOR_2K = "/api/bench/floor-2k"
FLOOR_EPG = "/api/bench/floor-epg"
PREFILL_THREADS = 4
# A cell slower than this with few connections is measured with few: more would only queue
# (a naive guide takes ~100 ms of CPU), and what they queued would run on into the next cell.
SLOW_RPS = 500
SLOW_CONNECTIONS = 4
PROBE_S = 1
CACHING = ("django-redis", "cacheops", "cachalot")  # what a prefill warms
CHECKED_VIEWERS = 20  # the byte check's viewers (each on every kept day)


def start(ctx: Context) -> None:
    """Every peer's server, the byte check, then the floors sized from the EPG bodies seen."""
    wrkbench.ensure_wrk()  # `bench api` did; a fresh machine's `bench run` stopped at its first wrk
    ctx.viewers = wrkbench.viewers(ctx.plan.viewers)
    for name in ctx.peers:
        ctx.servers[name] = servers.peer(name, ctx.env)
        print(f"  {name} on port {ctx.servers[name].port}", flush=True)


def byte_check(ctx: Context) -> dict[str, list[str]]:
    """peer -> mismatches against naive (empty: the same bytes everywhere)."""
    from core import services
    from core.models import Profile

    vs = ctx.viewers[:CHECKED_VIEWERS]
    tz = Profile.objects.select_related("region").get(pk=vs[0].profile_id).region.timezone
    from datetime import UTC, datetime, timedelta

    kept = services.epg_days(tz, datetime.now(UTC))
    # No date (today), every kept day, and one past them (a 404 everywhere).
    days = [None, *(d.isoformat() for d in kept), (kept[-1] + timedelta(days=3)).isoformat()]
    bases = {name: s.base for name, s in ctx.servers.items() if name in peers.PEERS}
    found = check.same_bytes(bases, [(v.token, v.allowed, v.refused) for v in vs], days)
    by_peer: dict[str, list[str]] = {name: [] for name in bases}
    for line in found:
        by_peer.setdefault(line.split(":", 1)[0].strip(), []).append(line)
    return by_peer


def _prefill(server: servers.Server, requests: list[tuple[str, str]]) -> None:
    def one(req):
        server.get(req[0], req[1])

    with ThreadPoolExecutor(PREFILL_THREADS) as pool:
        list(pool.map(one, requests))


def run(ctx: Context) -> None:
    res = ctx.results
    mismatches = byte_check(ctx)
    for name, lines in mismatches.items():
        res.add(Row("api", name, "bytes_differ_from_naive", len(lines), "answers"))
        if lines:
            res.notes.append(f"api: {name} differs from naive in {len(lines)} answers, e.g. {lines[0][:300]}")
    epg_sizes = [len(ctx.servers["prewarm"].get(EPG, v.token)[1]) for v in ctx.viewers] \
        if "prewarm" in ctx.servers else [100_000]
    epg_bytes = round(statistics.fmean(epg_sizes))
    floors = {"wsgi-2k": servers.wsgi_floor("wsgi-2k", ctx.env, 2048),
              "wsgi-epg": servers.wsgi_floor("wsgi-epg", ctx.env, epg_bytes)}
    ctx.servers.update(floors)
    res.notes.append(f"api: EPG bodies {min(epg_sizes):,}-{max(epg_sizes):,} B, mean {epg_bytes:,} B"
                     f" (the EPG-size floors' body); {len(ctx.viewers)} viewers")

    plan, vs = ctx.plan, ctx.viewers
    reqs = {"epg": [(EPG, v.token) for v in vs], "playback": [(PLAYBACK + v.allowed, v.token) for v in vs],
            "profile": [(PROFILE, v.token) for v in vs]}
    # (server, endpoint label, request list)
    cells: list[tuple[str, str, list]] = [("wsgi-2k", "floor_2k", [("/", None)]),
                                         ("wsgi-epg", "floor_epg", [("/", None)])]
    if "prewarm" in ctx.servers:  # Django's own floor: constant bytes through the product's fast path
        cells += [("prewarm", "django_floor_2k", [(FLOOR_2K, None)]),
                  ("prewarm", "django_floor_epg", [(FLOOR_EPG, None)])]
    for name in ctx.peers:
        cells += [(name, "epg", reqs["epg"]), (name, "playback", reqs["playback"])]
    if "prewarm" in ctx.servers:  # #14's third hot read (the peers serve no profile route)
        cells.append(("prewarm", "profile", reqs["profile"]))
    for name in ctx.peers:
        if name in CACHING or name == "prewarm":
            t0 = time.monotonic()
            _prefill(ctx.servers[name], reqs["epg"] + reqs["playback"] + (reqs["profile"] if name == "prewarm" else []))
            print(f"  {name}: every viewer's answers requested once ({time.monotonic() - t0:.1f} s)", flush=True)

    wrkbench.WAIT_QUIET["on"] = False  # the run owns the machine; overlaps are reported, not waited out
    conns = {}
    for name, label, requests in cells:
        probe = wrkbench.wrk(ctx.servers[name].base, requests, SLOW_CONNECTIONS, PROBE_S)
        conns[(name, label)] = SLOW_CONNECTIONS if probe.rps < SLOW_RPS else plan.connections
        common.wait_idle()
    got: dict[tuple[str, str], list] = {}
    refills: dict[tuple[str, str], list[float]] = {}
    for p in range(plan.passes):
        # Each pass starts one cell later, so no cell always runs first (or right after the naive ones).
        order = cells[p % len(cells):] + cells[: p % len(cells)]
        for name, label, requests in order:
            server = ctx.servers[name]
            if name in CACHING:
                # Measured warm: a cache whose entries expired between passes (django-redis keeps
                # them 5 minutes) would have its refill measured, which a steady load pays once
                # per viewer and TTL. The refill's own time is reported apart.
                t0 = time.monotonic()
                _prefill(server, requests)
                refills.setdefault((name, label), []).append(time.monotonic() - t0)
            spy = profiling.start(ctx, name, label, server.child.pid, plan.seconds + 1) if p == 0 else None
            r = wrkbench.measure(server, requests, conns[(name, label)], plan.seconds)
            profiling.finish(spy, ctx)
            common.wait_idle()
            got.setdefault((name, label), []).append(r)
            bad = r.bad_status + r.socket_errors
            print(f"  pass {p + 1}: {name:13} {label:17} {r.rps:>9,.0f} req/s  p50 {r.p50:7.2f}  p99 {r.p99:8.2f} ms"
                  + (f"  ({bad} errors)" if bad else ""), flush=True)

    if "prewarm" in ctx.servers:  # #14: p99 at half of the maximum throughput
        for label in ("playback", "profile", "epg"):
            half = statistics.median(r.rps for r in got[("prewarm", label)]) / 2
            r = wrkbench.at_rate(ctx.servers["prewarm"], reqs[label], plan.connections, half, plan.seconds)
            res.add(Row("api", "prewarm", f"{label}_half_load_p99", r.p99, "ms"))
            res.add(Row("api", "prewarm", f"{label}_half_load_rps", r.rps, "req/s"))
            print(f"  half load: prewarm {label} {r.rps:,.0f} req/s  p99 {r.p99:.2f} ms", flush=True)
    for (name, label), rs in got.items():
        res.add(over_passes("api", name, f"{label}_rps", [r.rps for r in rs], "req/s"))
        res.add(over_passes("api", name, f"{label}_p50", [r.p50 for r in rs], "ms"))
        res.add(over_passes("api", name, f"{label}_p99", [r.p99 for r in rs], "ms"))
        if (name, label) in refills:
            res.add(over_passes("api", name, f"{label}_refill_before_cell", refills[(name, label)], "s"))
        errors = sum(r.bad_status + r.socket_errors for r in rs)
        if errors:
            res.notes.append(f"api: {name} {label}: {errors} answers >= 400 or socket errors over the passes")
        best = max(rs, key=lambda r: r.rps)
        res.samples.setdefault("latency_cdf", {})[f"{name} {label}"] = list(best.cdf)
    slow = ", ".join(f"{n} {lb}" for (n, lb), c in conns.items() if c != plan.connections)
    res.notes.append(
        f"api: wrk -t1, {plan.connections} keep-alive connections ({SLOW_CONNECTIONS} for a cell under {SLOW_RPS}"
        f" req/s with {SLOW_CONNECTIONS}: {slow or 'none'}),"
        f" {plan.seconds:g} s per measurement after"
        f" {wrkbench.WARMUP_S} s unrecorded, {plan.passes} interleaved passes (median, min-max); requests rotate"
        f" over {len(vs)} viewers' tokens; every server runs granian with the Procfile's flags")
