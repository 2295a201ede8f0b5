"""`lag`, `fanout` and `warm`: what only Prewarm does (rewrite entries on commit, ahead of the
read), measured with the `bench pipeline` and `bench warmup` machinery and the Procfile's
processes. The peers invalidate and rebuild on the next read, so they get no row here: the
`freshness` scenario is where writes are compared across peers."""
from __future__ import annotations

from .. import pipeline as pl
from .. import warmup as wu
from ..results import Row
from . import profiling, workers
from .context import Context

PEER = "prewarm"


def lag(ctx: Context) -> None:
    res, plan = ctx.results, ctx.plan
    procs = workers.start_pipeline(ctx)
    try:
        for rate in plan.lag_rates:
            pl.settle()
            spy = profiling.start(ctx, "worker", "lag", procs[0].pid, plan.lag_seconds) if rate == 200 else None
            r = pl.lag_at_rate(rate, plan.lag_seconds, "relay")
            profiling.finish(spy, ctx)
            for q in ("p50", "p99"):
                res.add(Row("lag", PEER, f"lag_{rate}_{q}", r[q], "ms"))
            res.add(Row("lag", PEER, f"lag_{rate}_rate", r["rate"], "changes/s"))
            for hop, h in r["hops"].items():
                if h["n"]:
                    res.add(Row("lag", PEER, f"hop_{hop}_{rate}_p50", h["p50"], "ms"))
            res.samples.setdefault("lag", {})[f"{rate}/s"] = r["samples"]
            print(f"  lag @ {r['rate']:.0f}/s: p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms", flush=True)
        pl.settle()
        b = pl.burst(plan.burst)
        res.add(Row("lag", PEER, "burst_converge", None if b["converge_s"] != b["converge_s"] else b["converge_s"],
                    "s"))
        res.add(Row("lag", PEER, "burst_p50", b["lag"]["p50"], "ms"))
        res.add(Row("lag", PEER, "burst_p99", b["lag"]["p99"], "ms"))
        res.add(Row("lag", PEER, "burst_rows", b["rows"], "rows"))
        print(f"  burst of {b['rows']:,}: every entry current after {b['converge_s']:.2f} s", flush=True)
        if "fanout" in ctx.scenarios:
            pl.settle()
            _fanout(ctx)
    finally:
        workers.stop_pipeline(procs)
    res.notes.append(f"lag: raw SQL through the relay, {plan.lag_seconds:g} s per rate on {plan.profiles:,} profiles;"
                     f" burst: one UPDATE of {plan.burst:,} subscriptions, commit -> every entry current")


def _fanout(ctx: Context) -> None:
    f = pl.fanout()
    ctx.results.add(Row("fanout", PEER, "licence_change_converge", f["converge_s"], "s"))
    ctx.results.add(Row("fanout", PEER, "viewers", f["viewers"], "viewers"))
    ctx.results.add(Row("fanout", PEER, "classes", f["classes"], "classes"))
    print(f"  fan-out over {f['viewers']:,} viewers: {f['converge_s']:.3f} s", flush=True)


def fanout(ctx: Context) -> None:
    """Alone (without `lag`, which runs it with its own workers)."""
    procs = workers.start_pipeline(ctx)
    try:
        pl.settle()
        _fanout(ctx)
    finally:
        workers.stop_pipeline(procs)


def verify(ctx: Context) -> None:
    """`cache_verify --all` after the other scenarios' writes: its time (SPEC §8) and the drift
    it finds, which must be none. No beat runs here, so the time-driven rebuilds beat would
    have queued since the warm-up are queued first, as its next scan would."""
    from schedules.tasks import schedule_due

    from ..verify import cache_verify, drift

    procs = workers.start_pipeline(ctx)
    try:
        schedule_due()
        pl.settle()
        wall, cpu, report, _ = cache_verify(ctx.env)
    finally:
        workers.stop_pipeline(procs)
    # Orphans (a class no viewer is in any more, after the lag runs moved viewers about) are
    # garbage the rolling verification deletes, not a wrong answer: counted apart.
    found = sum(got[kind] for got in report["families"].values() for kind in ("missing", "stale"))
    orphans = sum(got["orphan"] for got in report["families"].values())
    res = ctx.results
    res.add(Row("verify", PEER, "cache_verify_all", wall, "s"))
    res.add(Row("verify", PEER, "cache_verify_cpu", cpu, "s"))
    res.add(Row("verify", PEER, "profiles_checked", report["families"]["profile"]["checked"], "profiles"))
    res.add(Row("verify", PEER, "missing_or_stale", found, "entries"))
    res.add(Row("verify", PEER, "orphans", orphans, "entries"))
    res.notes.append(f"verify: cache_verify --all after the other scenarios: {drift(report)}")
    print(f"  cache_verify --all: {wall:.1f} s, {drift(report)}", flush=True)


def warm(ctx: Context) -> None:
    m = wu.measure(ctx.env)
    res = ctx.results
    res.add(Row("warm", PEER, "warm_all", m["warm_s"], "s"))
    res.add(Row("warm", "floor", "warm_all", m["floor_s"], "s"))
    res.add(Row("warm", PEER, "vs_floor", m["warm_s"] / m["floor_s"], "x"))
    res.add(Row("warm", PEER, "profiles_per_s", m["profiles"] / m["warm_s"], "entries/s"))
    res.add(Row("warm", PEER, "stream_lag_p99", m["lag"]["p99"], "ms"))
    print(f"  warm --all of {m['profiles']:,}: {m['warm_s']:.1f} s, floor {m['floor_s']:.1f} s", flush=True)
    res.notes.append(f"warm: `warm --all` of {m['profiles']:,} profiles through a job (the Procfile's workers) with"
                     f" {wu.STREAM_RATE} invalidations/s meanwhile; the floor: {wu.FLOOR_PROCESSES} processes, COPY"
                     " out + packed HSETs, no versions")
