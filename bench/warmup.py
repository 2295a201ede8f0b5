"""Warm-up scenario: `manage.py warm --all` of the bench data set through a warm-up job and
the Procfile's worker processes, beside a raw floor measured in the same run (2 processes
that COPY the rows out and write packed HSETs on a plain socket), while an invalidation
stream of 100 changes/s runs and its lag is recorded (#11: at most 3.5x the floor, the
stream's p99 within 100 ms)."""
from __future__ import annotations

import multiprocessing
import shlex
import subprocess
import sys
import time

from . import common

TARGET_RATIO = 3.5
STREAM_RATE = 100  # invalidations per second during the warm-up
STREAM_P99_MS = 100.0
FLOOR_PROCESSES = 2
FLOOR_BATCH = 1000
SCRATCH = "floor"  # the floor's keys: as long as the bench prefix's, deleted after

_FLOOR_SQL = """COPY (
  SELECT p.id, r.code, i.code, r.timezone, p.version,
         COALESCE((SELECT json_agg(pl.code ORDER BY pl.code) FROM core_subscription s
                   JOIN core_plan pl ON pl.id = s.plan_id WHERE s.profile_id = p.id), '[]')
    FROM core_profile p JOIN core_region r ON r.id = p.region_id JOIN core_isp i ON i.id = p.isp_id
   WHERE p.id % {n} = {k}) TO STDOUT"""


def _floor_part(args) -> int:
    """One floor process: its share of the rows, COPY out, packed HSETs, replies read in bulk."""
    url, redis_url, n, k = args
    import psycopg
    import redis

    # A plain connection (hiredis parser), no pool, no client: the cheapest way to send bytes.
    conn = redis.Connection(**redis.connection.parse_url(redis_url))
    written, batch, built = 0, [], str(int(time.time() * 1000))
    with psycopg.connect(url) as pg, pg.cursor() as cur, cur.copy(_FLOOR_SQL.format(n=n, k=k)) as copy:
        for pid, region, isp, tz, version, subs in copy.rows():
            batch.append(("HSET", f"{SCRATCH}:v1:profile:{pid}", "region", region, "isp", isp, "tz", tz,
                          "subscriptions", subs, "class", "0123456789abcdef", "version", version,
                          "built_at", built, "valid_until", ""))
            if len(batch) >= FLOOR_BATCH:
                written += _send(conn, batch)
                batch = []
    written += _send(conn, batch)
    conn.disconnect()
    return written


def _send(conn, commands) -> int:
    if not commands:
        return 0
    conn.send_packed_command(conn.pack_commands(commands))
    for _ in commands:
        conn.read_response()
    return len(commands)


def floor(env) -> tuple[float, int]:
    """(seconds, entries) for FLOOR_PROCESSES processes writing every profile's hash."""
    from core.redis_conn import unlink_prefix

    parts = [(env["DATABASE_URL"], env["REDIS_URL"], FLOOR_PROCESSES, k) for k in range(FLOOR_PROCESSES)]
    t0 = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(FLOOR_PROCESSES) as pool:
        written = sum(pool.map(_floor_part, parts))
    seconds = time.monotonic() - t0
    unlink_prefix(SCRATCH)
    return seconds, written


def stream_while(proc: subprocess.Popen) -> dict:
    """STREAM_RATE single-row changes a second (raw SQL: the relay path) until `proc` ends;
    the lag of each, from the workers' own samples."""
    from core import metrics
    from core.models import Isp, Profile
    from workers import relay

    from .pipeline import drained, forget_lag_samples, hop_summaries, wait

    ids = list(Profile.objects.order_by("?").values_list("id", flat=True)[:100_000])
    isps = list(Isp.objects.values_list("id", flat=True))
    forget_lag_samples()
    sent, start = 0, time.monotonic()
    with relay.connect() as conn:
        while proc.poll() is None:
            delay = start + sent / STREAM_RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            conn.execute("UPDATE core_profile SET isp_id = %s WHERE id = %s",
                         [isps[sent % len(isps)], ids[sent % len(ids)]])
            sent += 1
        wait(lambda: drained(conn), 120)
    time.sleep(0.5)
    samples = [s * 1000 for s in metrics.STORE.recent_samples(metrics.INVALIDATION_LAG)]
    return {**common.summary(samples), "sent": sent, "rate": sent / (time.monotonic() - start),
            "hops": hop_summaries()}


def procfile_argv(name: str) -> list[str]:
    """A Procfile line's command, its `celery` run by this interpreter."""
    for line in (common.ROOT / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            argv = shlex.split(command)
            return [sys.executable, "-m", "celery", *argv[1:]] if argv[0] == "celery" else argv
    raise KeyError(f"no {name!r} line in the Procfile")


def measure(env, warmup_concurrency: int | None = None) -> dict:
    """The floor, then `warm --all` through a job by the Procfile's workers with the
    invalidation stream running; the figures of both."""
    from core.models import Profile
    from ops.models import WarmupJob

    floor_s, floor_n = floor(env)
    print(f"floor: {floor_n} hashes in {floor_s:.1f}s", flush=True)
    # The Procfile's invalidation and warm-up workers (their command lines as written there,
    # `--warmup-concurrency` aside), and a relay for the stream.
    warmup_argv = procfile_argv("warmup")
    if warmup_concurrency:
        warmup_argv[warmup_argv.index("-c") + 1] = str(warmup_concurrency)
    workers = [common.child(name, procfile_argv(name), env) for name in ("worker", "worker2")]
    workers.append(common.child("warmup", warmup_argv, env))
    relay_proc = common.relay(env)
    try:
        time.sleep(3)  # the workers are consuming
        t0 = time.monotonic()
        warm = subprocess.Popen([sys.executable, "manage.py", "warm", "--all"], cwd=common.ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lag = stream_while(warm)
        out = warm.communicate()[0]
        warm_s = time.monotonic() - t0  # includes the stream's drain: at most a few ms
        if warm.returncode != 0:
            raise RuntimeError(f"warm --all failed: {out[-2000:]}")
    finally:
        for proc in (relay_proc, *workers):
            common.stop(proc)
    return {"floor_s": floor_s, "floor_n": floor_n, "warm_s": warm_s, "job": WarmupJob.objects.order_by("-id").first(),
            "profiles": Profile.objects.count(), "lag": lag, "warmup_argv": warmup_argv}


def run(args) -> None:
    env = common.bench_env()
    common.setup(env, args.profiles)
    if not args.no_wait:
        common.wait_quiet()
    busy = common.busy()
    m = measure(env, args.warmup_concurrency)
    floor_s, floor_n, warm_s, job, profiles, lag = (m[k] for k in ("floor_s", "floor_n", "warm_s", "job", "profiles",
                                                                   "lag"))
    ratio = warm_s / floor_s
    rows = [
        (f"floor: {FLOOR_PROCESSES} processes, COPY out + packed HSET (no versions)", floor_n, f"{floor_s:.1f} s",
         f"{floor_n / floor_s:,.0f}/s", "", ""),
        (f"warm --all: job {job.pk} ({job.done} entries: {profiles} profiles, classes, fragments;"
         f" {job.written} written, {job.refused} refused)", profiles, f"{warm_s:.1f} s",
         f"{profiles / warm_s:,.0f}/s", f"{ratio:.2f}x", "yes" if ratio <= TARGET_RATIO else "NO"),
        (f"invalidations meanwhile: {lag['sent']} changes at {lag['rate']:.0f}/s, lag p50 / p99 / max",
         lag["n"], f"{lag['p50']:.1f} / {lag['p99']:.1f} / {lag['max']:.1f} ms", "", "",
         "yes" if lag["p99"] <= STREAM_P99_MS else "NO"),
        *((f"  hop {hop} p50 / p99 / max", h["n"], f"{h['p50']:.1f} / {h['p99']:.1f} / {h['max']:.1f} ms",
           "", "", "") for hop, h in lag["hops"].items() if h["n"]),
    ]
    notes = [
        f"targets (#11): warm --all within {TARGET_RATIO}x the floor measured in the same run; the stream's "
        f"p99 lag within {STREAM_P99_MS:.0f} ms",
        f"workers: the Procfile's `worker`, `worker2` ({' '.join(procfile_argv('worker')[3:])}) and `warmup`"
        f" ({' '.join(m['warmup_argv'][3:])}), one relay; warm --all submits a job and follows it (its wall time"
        " from submit to done)",
        "the floor writes the same hashes (fields and sizes) without versions, scripts or classes",
        "other tests or benchmarks running at the start: " + ("; ".join(sorted(set(busy))) or "none"),
    ]
    common.write_report("warmup", "Warm-up benchmark", rows, ("measure", "n", "time", "rate", "vs floor",
                                                              "target met"), notes)
