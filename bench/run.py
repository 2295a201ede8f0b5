"""`python -m bench run`: Prewarm and the peers a team would otherwise pick, on the same data
and endpoint semantics, side by side in one run; prints the main table and the targets, and
writes bench/results/<UTC stamp>/report.md, results.json and PNG plots."""
from __future__ import annotations

import os
import platform
import shlex
import signal
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
    for name in names:
        if name != "prewarm":
            peers.clear_scope(*peers.redis_scope(name, env))


def _anchor_time_edges() -> None:
    """No beat runs during a run, and a re-seed drops the anchor of its edge scan (a scan
    without one looks back 6 minutes): anchor it at the start, as a beat that ran throughout
    would have, so the verify scenario's scan queues every time edge that passed meanwhile."""
    from core import keys
    from core.redis_conn import client

    client().set(keys.edges_scanned_key(), time.time(), nx=True)


def machine(plan, stamp: str, command: str) -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=common.ROOT, capture_output=True,
                            text=True).stdout.strip()
    return {"stamp": stamp, "cores": os.cpu_count(), "interpreter": common.interpreter(),
            "python_build": " ".join(platform.python_build()), "platform": platform.platform(terse=True),
            "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()), "commit": commit,
            "profiles": plan.profiles, "quick": plan is QUICK or plan.seconds == QUICK.seconds, "command": command}


def run(args) -> int:
    # A SIGTERM ends the run through its finally blocks and atexit, which stop every server
    # and worker it started (the default action would leave them running).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
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
    _anchor_time_edges()
    took = ctx.results.machine.setdefault("scenario_seconds", {})

    def timed(name: str, step) -> None:
        print(name, flush=True)
        t0 = time.monotonic()
        step(ctx)
        took[name] = round(time.monotonic() - t0, 1)

    if {"api", "freshness", "memory"} & set(chosen):
        try:
            timed("servers", api.start)
            for name, step in (("api", api.run), ("memory", memory.run), ("freshness", freshness.run)):
                if name in chosen:  # memory before freshness, which writes
                    timed(name, step)
        finally:
            servers.stop_all(ctx.servers.values())
    if "lag" in chosen:
        timed("lag" + (" and fanout" if "fanout" in chosen else ""), pipeline.lag)
    elif "fanout" in chosen:
        timed("fanout", pipeline.fanout)
    if "verify" in chosen:
        timed("verify", pipeline.verify)
    if "warm" in chosen:  # last: it rewrites every entry
        timed("warm", pipeline.warm)
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
