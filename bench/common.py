"""Shared harness parts: a bench database and key prefix, child processes, reports."""
from __future__ import annotations

import atexit
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "bench" / "reports"
BENCH_DB = "prewarm_bench"
BENCH_PREFIX = "bench"


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
    env.update(DATABASE_URL=url, REDIS_URL=redis_url, CELERY_BROKER_URL=broker, PREWARM_KEY_PREFIX=os.environ.get("BENCH_KEY_PREFIX", BENCH_PREFIX),
               PREWARM_DEV="1", PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="core.settings")
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


class Child:
    """A worker, relay or server process for the length of a scenario."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], ready: str | None = None):
        self.name = name
        self.log_path = REPORTS / f".{name}.log"
        self.log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        atexit.register(self.stop)  # even when the scenario fails half-way
        if ready:
            deadline = time.monotonic() + 60
            while ready not in self.log_path.read_text(errors="replace"):
                if self.popen.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start:\n{self.log_path.read_text(errors='replace')[-2000:]}")
                time.sleep(0.05)

    def stop(self):
        if self.log.closed:
            return
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.log.close()


def worker(env, concurrency=2) -> Child:
    return Child("worker", [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "invalidate,warmup",
                            "-c", str(concurrency), "--without-gossip", "--without-mingle", "--without-heartbeat",
                            "--loglevel", os.environ.get("BENCH_WORKER_LOGLEVEL", "WARNING")], env, ready=None)


def relay(env) -> Child:
    return Child("relay", [sys.executable, "manage.py", "relay", "--poll", "0.5"], env, ready="caught up")


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


def write_report(scenario: str, title: str, rows: list[tuple], header: tuple, notes: list[str]) -> Path:
    """Print a table and write the same as Markdown under bench/reports/."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths))  # noqa: E731
    print("\n" + title)
    print(line(header))
    for r in rows:
        print(line(r))
    for n in notes:
        print("- " + n)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = REPORTS / f"{scenario}-{stamp}.md"
    md = [f"# {title}", "", f"Run {stamp} on {platform.node() and 'this machine'}: {os.cpu_count()} cores,"
          f" Python {platform.python_version()}.", "",
          "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    md += [""] + [f"- {n}" for n in notes]
    path.write_text("\n".join(md) + "\n")
    print(f"report: {path.relative_to(ROOT)}")
    return path
