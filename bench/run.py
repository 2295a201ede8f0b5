"""`python -m bench run`: Prewarm and the peers a team would otherwise pick, on the same data
and endpoint semantics, side by side in one run; prints the main table and the targets, and
writes bench/results/<UTC stamp>/report.md, results.json and PNG plots."""
from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime

import orjson

from . import common, peers, plots, report
from .scenarios import SCENARIOS, api, freshness, memory, pipeline, servers
from .scenarios.context import FULL, QUICK, Context

RESULTS = common.ROOT / "bench" / "results"


def _flush_peers(env: dict[str, str], names: list[str]) -> None:
    """Start every caching peer empty: bytes cached by an earlier run (on other data) would be
    served as they are, and a TTL left over would skew freshness."""
    import redis

    from core.redis_conn import unlink_prefix

    for name in names:
        if name == "prewarm":
            continue
        url, prefix = peers.redis_scope(name, env)
        if prefix:
            unlink_prefix(prefix)
        else:
            r = redis.Redis.from_url(url)
            try:
                r.flushdb()
            finally:
                r.close()


def machine(plan, stamp: str, command: str) -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=common.ROOT, capture_output=True,
                            text=True).stdout.strip()
    return {"stamp": stamp, "cores": os.cpu_count(), "interpreter": common.interpreter(),
            "python_build": " ".join(platform.python_build()), "platform": platform.platform(terse=True),
            "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()), "commit": commit,
            "profiles": plan.profiles, "quick": plan is QUICK or plan.seconds == QUICK.seconds, "command": command}


def run(args) -> int:
    plan = QUICK if args.quick else FULL
    if args.profiles:
        plan = replace(plan, profiles=args.profiles)
    chosen = list(dict.fromkeys(args.scenario or SCENARIOS))
    names = list(dict.fromkeys(args.peers or peers.PEERS))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / stamp
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench run " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["run"] else sys.argv[1:])
    env = common.bench_env()
    started = time.monotonic()
    common.setup(env, plan.profiles)
    ctx = Context(plan=plan, env=env, out=out, peers=names, scenarios=chosen, profile=args.profile)
    ctx.results.machine = machine(plan, stamp, command)
    _flush_peers(env, names)
    if {"api", "freshness", "memory"} & set(chosen):
        try:
            print("servers", flush=True)
            api.start(ctx)
            if "api" in chosen:
                print("api", flush=True)
                api.run(ctx)
            if "memory" in chosen:  # before freshness, which writes
                print("memory", flush=True)
                memory.run(ctx)
            if "freshness" in chosen:
                print("freshness", flush=True)
                freshness.run(ctx)
        finally:
            servers.stop_all(ctx.servers.values())
    if "lag" in chosen:
        print("lag" + (" and fanout" if "fanout" in chosen else ""), flush=True)
        pipeline.lag(ctx)
    elif "fanout" in chosen:
        print("fanout", flush=True)
        pipeline.fanout(ctx)
    if "verify" in chosen:
        print("verify", flush=True)
        pipeline.verify(ctx)
    if "warm" in chosen:  # last: it rewrites every entry
        print("warm", flush=True)
        pipeline.warm(ctx)
    return write(ctx, time.monotonic() - started)


def write(ctx: Context, seconds: float) -> int:
    res, out = ctx.results, ctx.out
    res.machine["seconds"] = round(seconds, 1)
    res.machine["loadavg_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    (out / "results.json").write_bytes(orjson.dumps(res.as_json(), option=orjson.OPT_INDENT_2))
    drawn = [p.name for p in plots.draw_all(res, out, ctx.plan.fresh_timeout)]
    drawn += sorted(p.name for p in out.glob("flame-*.svg"))
    full = ctx.plan.profiles >= FULL.profiles and ctx.plan.lag_seconds >= FULL.lag_seconds
    lines = report.markdown(res, title="Prewarm against its peers", full=full, plots=drawn,
                            command=res.machine["command"])
    (out / "report.md").write_text("\n".join(lines) + "\n")
    header, rows = report.main_table(res)
    if rows:
        common.print_table(header, rows)
    for t in report.targets(res, full):
        print(f"  {t.verdict:8} {t.name}: {t.measured}")
    print(f"report: {(out / 'report.md').relative_to(common.ROOT)} ({seconds / 60:.1f} min)", flush=True)
    return 0
