"""Prewarm's pipeline for a scenario: the Procfile's invalidation workers and one relay."""
from __future__ import annotations

from .. import common
from ..warmup import procfile_argv
from .context import Context

INVALIDATION_WORKERS = ("worker", "worker2")


def start_pipeline(ctx: Context) -> list:
    from core import keys
    from core.redis_conn import client

    # Claims an interrupted run left behind would hold their ids back (beat's sweeper heals
    # that in production; no beat runs here).
    for kind in ("profile", "region", "channel"):
        client().delete(keys.dirty_key(kind))
    procs = [common.child(f"run-{name}", procfile_argv(name), ctx.env, ready="ready.")
             for name in INVALIDATION_WORKERS]
    procs.append(common.relay(ctx.env))
    return procs


def stop_pipeline(procs: list) -> None:
    for proc in reversed(procs):
        common.stop(proc)
