"""Shared harness parts: a bench database and key prefix, child processes, reports."""
from __future__ import annotations

import atexit
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from tools import procs

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "bench" / "reports"
BENCH_DB = "prewarm_bench"
BENCH_PREFIX = "bench"
RUN_SECRET = "bench-" + secrets.token_urlsafe(24)


def bench_env() -> dict[str, str]:
    """The environment for every bench process: its own database and key prefix."""
    import dj_database_url

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/prewarm")
    parsed = dj_database_url.parse(base)
    user = parsed["USER"] or "postgres"
    auth = user + (f":{parsed['PASSWORD']}" if parsed["PASSWORD"] else "")
    url = os.environ.get("BENCH_DATABASE_URL") or (
        f"postgres://{auth}@{parsed['HOST'] or '127.0.0.1'}:{parsed['PORT'] or 5432}/{BENCH_DB}"
    )
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    # Its own broker database, so a bench worker never takes a developer's or a test's tasks.
    broker = os.environ.get("BENCH_BROKER_URL") or redis_url.rsplit("/", 1)[0] + "/15"
    env = dict(os.environ)
    # Production refuses the built-in secret: a bench run signs its tokens with one of its own.
    env.setdefault("SECRET_KEY", RUN_SECRET)
    env.update(DATABASE_URL=url, REDIS_URL=redis_url, CELERY_BROKER_URL=broker,
               PREWARM_KEY_PREFIX=os.environ.get("BENCH_KEY_PREFIX", BENCH_PREFIX),
               PREWARM_DEV="1", PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="config.settings")
    return env


def ensure_database(env: dict[str, str]) -> None:
    import dj_database_url
    import psycopg

    p = dj_database_url.parse(env["DATABASE_URL"])
    with psycopg.connect(host=p["HOST"], port=p["PORT"] or 5432, user=p["USER"], password=p["PASSWORD"] or None,
                         dbname="postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [p["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{p["NAME"]}"')


def manage(env, *args, quiet=False) -> str:
    out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True)
    if not quiet:
        print(out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "", flush=True)
    return out.stdout


def setup(env, profiles: int) -> None:
    """Point this process at the bench database and prefix; seed and warm when needed."""
    ensure_database(env)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "PREWARM_KEY_PREFIX",
                                           "PREWARM_DEV", "DJANGO_SETTINGS_MODULE", "SECRET_KEY") if k in env})
    import django

    django.setup()
    manage(env, "migrate", "-v0", quiet=True)
    from core import keys
    from core.models import Profile
    from core.redis_conn import client

    reseeded = Profile.objects.count() != profiles
    if reseeded:
        manage(env, "seed_demo", "--profiles", str(profiles), "--reset")
        drop_prefix()
    last_id = Profile.objects.order_by("-id").values_list("id", flat=True)[0]
    if reseeded or not client().exists(keys.profile_key(last_id)):
        t0 = time.monotonic()
        manage(env, "warm", "--all", "--inline")
        print(f"warm-up: {profiles} profiles in {time.monotonic() - t0:.1f}s", flush=True)


def drop_prefix() -> int:
    """Delete every key under the bench prefix. After a re-seed, entries of the old data set
    would be served as they are, and their versions (above the new rows') would refuse the
    warm-up's writes."""
    from django.conf import settings

    from core.redis_conn import unlink_prefix

    return unlink_prefix(settings.PREWARM_KEY_PREFIX)


def child(name: str, argv: list[str], env: dict[str, str], ready: str | None = None) -> procs.Proc:
    """A worker, relay or server process for the length of a scenario, logged to REPORTS/.<name>.log."""
    proc = procs.spawn(name, argv, REPORTS / f".{name}.log", cwd=ROOT, env=env)
    atexit.register(stop, proc)  # even when the scenario fails half-way
    if ready:
        proc.wait_for_output(ready, timeout=60)
    return proc


def stop(proc: procs.Proc) -> None:
    if not proc.stop():
        print(f"{proc.name} ignored SIGTERM for {procs.STOP_GRACE:.0f}s and was killed: {proc.log_path}", flush=True)


def worker(env, concurrency=2, pool="prefork", name="worker", loglevel="INFO") -> procs.Proc:
    """An invalidation worker as the Procfile runs it (its log level included: INFO logs two
    lines a task), with the pool and concurrency asked for."""
    return child(name, [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "invalidate,warmup",
                        "-P", pool, "-c", str(concurrency), "-n", f"{name}@%h", "--without-gossip",
                        "--without-mingle", "--without-heartbeat", "--loglevel", loglevel], env, ready=None)


def relay(env) -> procs.Proc:
    return child("relay", [sys.executable, "manage.py", "relay", "--poll", "0.5"], env, ready="caught up")


# Other CPU-heavy jobs on a shared machine skew throughput ratios: wait them out.
BUSY_PATTERNS = ("bench pipeline", "bench verify", "pytest")
BUSY_POLL_S = 10
BUSY_LIMIT_S = 15 * 60


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def busy() -> list[str]:
    """Command lines of other processes matching BUSY_PATTERNS (never this one or its parents)."""
    mine = _ancestors()
    found = []
    for pattern in BUSY_PATTERNS:
        out = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
        for line in out.splitlines():
            pid, _, cmd = line.partition(" ")
            if pid.isdigit() and int(pid) not in mine:
                found.append(cmd[:80])
    return found


def wait_quiet() -> float:
    """Seconds waited until no other benchmark or test run is going (at most BUSY_LIMIT_S)."""
    t0 = time.monotonic()
    while others := busy():
        waited = time.monotonic() - t0
        if waited >= BUSY_LIMIT_S:
            print(f"still busy after {waited:.0f}s, measuring anyway: {others[0]}", flush=True)
            break
        print(f"waiting for: {others[0]} ...", flush=True)
        time.sleep(BUSY_POLL_S)
    return time.monotonic() - t0


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields)  # idle + iowait, total


def wait_idle(threshold: float = 0.75, window: float = 0.3, limit: float = 5.0) -> float:
    """Seconds waited until the machine's CPUs were idle for `threshold` of a `window`: a
    server that was sent more work than it could do goes on after its load generator
    stopped, and would be measured as part of the next cell."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        idle0, total0 = _cpu_times()
        time.sleep(window)
        idle1, total1 = _cpu_times()
        if total1 > total0 and (idle1 - idle0) / (total1 - total0) >= threshold:
            break
    return time.monotonic() - t0


def interpreter() -> str:
    """Which Python ran the benchmark, and how fast it is on pure Python (optimized builds ~2x)."""
    import timeit

    build = "the distribution's package" if sys.base_prefix == "/usr" else "a source build (no PGO/LTO unless asked)"
    loop = min(timeit.repeat("sum(range(1_000_000))", number=5, repeat=3)) / 5 * 1000
    return f"Python {platform.python_version()}, {build}, sum(range(1_000_000)) {loop:.1f} ms"


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50": percentile(samples, 50),
        "p90": percentile(samples, 90),
        "p99": percentile(samples, 99),
        "max": max(samples) if samples else float("nan"),
        "mean": statistics.fmean(samples) if samples else float("nan"),
    }


def print_table(header: tuple, rows: list[tuple]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for r in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)))


def _md_table(header: tuple, rows: list[tuple]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(x) for x in r) + " |" for r in rows)]


def write_report(scenario: str, title: str, rows: list[tuple], header: tuple, notes: list[str],
                 sections: list[tuple[str, tuple, list[tuple]]] = ()) -> Path:
    """Print a table (and further titled tables) and write the same as Markdown under bench/reports/."""
    print("\n" + title)
    print_table(header, rows)
    for name, sheader, srows in sections:
        print("\n" + name)
        print_table(sheader, srows)
    for n in notes:
        print("- " + n)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = REPORTS / f"{scenario}-{stamp}.md"
    md = [f"# {title}", "", f"Run {stamp} on {platform.node() and 'this machine'}: {os.cpu_count()} cores,"
          f" {interpreter()}.", "", *_md_table(header, rows)]
    for name, sheader, srows in sections:
        md += ["", f"## {name}", "", *_md_table(sheader, srows)]
    md += [""] + [f"- {n}" for n in notes]
    path.write_text("\n".join(md) + "\n")
    print(f"report: {path.relative_to(ROOT)}")
    return path
