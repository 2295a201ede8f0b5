"""The whole deployment for the fault scenarios (tests/acceptance/test_faults.py): every Procfile
process (web, both invalidation workers, the warm-up worker, beat) and two relays, as they run
in production (no development mode), against servers of their own: a Postgres server, a cache
Redis without persistence and a broker Redis, so a scenario may kill or restart any of them.
The load comes with it: readers over HTTP (threads here) and a writer process
(tests/acceptance/writer.py) that changes rows through every kind of writer.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psycopg
import redis
import requests

from tests.conftest import RedisServer
from tests.processes import procfile, stop_or_fail, wait_web
from tests.waiting import ROOT
from tools import devstack, procs

READY = {"worker": "ready.", "worker2": "ready.", "warmup": "ready.", "beat": "beat: Starting...",
         "relay": "caught up", "relay2": "caught up"}
# Test-sized recovery timers (the defaults: 600 s, 60 s, 120 s): a killed worker's tasks and
# chunks come back within a scenario. The Guarantees table names them beside each figure.
TIMERS = {"PREWARM_BROKER_VISIBILITY_TIMEOUT": "20", "PREWARM_WARMUP_LEASE_SECONDS": "10",
          "PREWARM_WARMUP_SENT_STALE_SECONDS": "20"}


class Postgres:
    """A Postgres server of the fault suite's own (the devstack's way: embedded or PATH), which
    a scenario may restart; each scenario gets a copy of a migrated, seeded template database."""

    def __init__(self, workdir: Path):
        self.datadir, self.port, self.proc = workdir / "pgdata", procs.free_port(), None
        self.copies = 0

    def start(self) -> Postgres:
        self.proc = devstack.start_postgres(self.datadir, self.port)
        devstack.wait_postgres(self.proc, self.port)  # also makes the template database
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT): sessions end, as in a restart for maintenance or a failover."""
        if self.proc is not None:
            self.proc.stop(grace=30)

    def url(self, name: str = devstack.DB_NAME) -> str:
        return f"postgres://{devstack.DB_USER}@{devstack.HOST}:{self.port}/{name}"

    def admin(self):
        return psycopg.connect(self.url("postgres"), autocommit=True)

    def copy(self) -> str:
        """A new database from the template; returns its URL."""
        self.copies += 1
        name = f"scenario_{self.copies}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{devstack.DB_NAME}"')
        return self.url(name)


def manage(env: dict, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def seed_template(pg: Postgres, scratch_redis: str, profiles: int, secrets: dict) -> None:
    env = {**os.environ, **secrets, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": pg.url(),
           "REDIS_URL": scratch_redis, "CELERY_BROKER_URL": scratch_redis}
    env.pop("PREWARM_DEV", None)
    for argv in (("migrate", "--no-input"), ("seed_demo", "--profiles", str(profiles), "--channels", "40")):
        done = manage(env, *argv)
        assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"


@dataclass
class Stack:
    """One scenario's deployment: its database, cache and broker, and every process."""

    pg: Postgres
    tmp: Path
    secrets: dict
    cache: RedisServer = None
    broker: RedisServer = None
    env: dict = field(default_factory=dict)
    procs: dict = field(default_factory=dict)
    url: str = ""
    restarts: Counter = field(default_factory=Counter)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _supervisor: threading.Thread | None = None

    def start(self, **extra_env) -> Stack:
        self.cache = RedisServer(self.tmp / "cache").start()
        # The broker keeps what it accepted (AOF, fsync on every write), as a broker must:
        # a restart loses no task. A cache Redis keeps nothing (the spec's deployment).
        self.broker = RedisServer(self.tmp / "broker", extra=["--appendonly", "yes", "--appendfsync", "always"]).start()
        port = procs.free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ, **self.secrets, **TIMERS, **extra_env,
            "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": self.pg.copy(),
            "REDIS_URL": self.cache.url, "CELERY_BROKER_URL": self.broker.url,
            "HOST": "127.0.0.1", "PORT": str(port), "PREWARM_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
            "PREWARM_STATIC_ROOT": str(self.tmp / "no-static"),
        }
        for name in ("PREWARM_DEV", "PREWARM_DEBUG", "PREWARM_KEY_PREFIX"):
            self.env.pop(name, None)
        warmed = manage(self.env, "warm", "--all", "--inline")
        assert warmed.returncode == 0, warmed.stdout + warmed.stderr
        commands = procfile()
        commands["relay2"] = commands["relay"]
        for name, command in commands.items():
            self.procs[name] = self._spawn(name, command)
        self.wait_ready()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()
        return self

    def _spawn(self, name: str, command: str) -> procs.Proc:
        # As honcho runs a Procfile line: through the shell.
        return procs.spawn(name, ["sh", "-c", command], self.tmp / f"{name}.log", cwd=ROOT, env=self.env,
                           append=True)

    def _supervise(self) -> None:
        """Restart a process that exited, as compose's `restart: unless-stopped` or systemd would
        (a crash, a kill -9, a worker that gave up on its broker); each restart is counted."""
        while not self._stopping.wait(0.5):
            for name, proc in list(self.procs.items()):
                if not proc.running():
                    self.restarts[name] += 1
                    self.procs[name] = self._spawn(name, procfile()["relay" if name == "relay2" else name])

    def kill(self, name: str) -> None:
        """kill -9 the process and every child it forked (a crash, an OOM kill); the supervisor
        starts it again."""
        self.procs[name].kill()

    def wait_ready(self, timeout: float = 60) -> None:
        """Every process up and ready (those the supervisor restarted included)."""
        wait_web(self.procs["web"], self.url, timeout)
        for name, marker in READY.items():
            self.procs[name].wait_for_output(marker, timeout)

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(10)
        try:
            stop_or_fail(list(self.procs.values()), grace=20)
        finally:
            for server in (self.cache, self.broker):
                if server is not None:
                    server.stop()

    def cache_client(self) -> redis.Redis:
        return redis.Redis.from_url(self.cache.url, socket_timeout=5)

    def db(self):
        return psycopg.connect(self.env["DATABASE_URL"], autocommit=True)

    def verify(self) -> dict:
        """`cache_verify --all --json`: its report, as an operator would read it."""
        done = manage(self.env, "cache_verify", "--all", "--json")
        assert done.returncode in (0, 1), f"cache_verify failed ({done.returncode}): {done.stderr}"
        return orjson.loads(done.stdout)

    def converge(self, timeout: float, allow_missing: bool = False) -> float:
        """Seconds until `cache_verify --all` finds no missing or stale entry (orphans, entries
        nothing reads any more, are its --repair's business); fails after `timeout`."""
        started = time.monotonic()
        while True:
            report = self.verify()
            drift = {family: {kind: found[kind] for kind in ("missing", "stale") if found[kind]}
                     for family, found in report["families"].items()}
            if allow_missing:
                drift = {family: {k: n for k, n in kinds.items() if k != "missing"} for family, kinds in drift.items()}
            drift = {family: kinds for family, kinds in drift.items() if kinds}
            if not drift:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"still drifting after {timeout:.0f}s: {drift}\n{orjson.dumps(report).decode()}")
            time.sleep(1)


@dataclass
class Viewers:
    """Who the readers read as: profile ids with tokens, and channel codes."""

    tokens: list[tuple[int, str]]
    channels: list[str]

    @classmethod
    def sample(cls, stack: Stack, count: int) -> Viewers:
        from api import tokens

        with stack.db() as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM core_profile ORDER BY random() LIMIT %s", [count])]
            channels = [r[0] for r in conn.execute("SELECT code FROM core_channel")]
        return cls([(pk, tokens.issue(pk, ttl=3600)) for pk in ids], channels)


DESIGNED = {200, 403}  # 403: playback refused (geo_blocked, isp_restricted, not_subscribed)


class Readers:
    """Threads reading the viewers' API as clients would (keep-alive, ~rate requests/s in all):
    profile, playback, channels and the guide. Every answer is counted; one that is neither 200
    nor a designed refusal is kept with its body."""

    def __init__(self, url: str, viewers: Viewers, threads: int = 2, rate: float = 150.0):
        self.url, self.viewers, self.threads, self.interval = url, viewers, threads, threads / rate
        self.statuses: Counter = Counter()
        self.unexpected: list[str] = []
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Readers:
        for n in range(self.threads):
            t = threading.Thread(target=self._run, args=(random.Random(n),), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self, rng: random.Random) -> None:
        session = requests.Session()
        session.trust_env = False  # loopback: never a proxy
        while not self._stop.is_set():
            pk, token = rng.choice(self.viewers.tokens)
            path = rng.choice(("/api/v1/me/profile", "/api/v1/me/epg", "/api/v1/me/channels",
                               f"/api/v1/me/playback/{rng.choice(self.viewers.channels)}"))
            started = time.monotonic()
            try:
                response = session.get(self.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)
                status, body = response.status_code, response.text[:300]
            except requests.RequestException as exc:
                status, body = "connection error", repr(exc)[:300]
                session = requests.Session()
                session.trust_env = False
            self.latencies.append(time.monotonic() - started)
            self.statuses[status] += 1
            if status not in DESIGNED and len(self.unexpected) < 20:
                self.unexpected.append(f"{path} (profile {pk}): {status} {body}")
            self._stop.wait(self.interval)

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return round(ordered[int(len(ordered) * 0.99)] * 1000, 1) if ordered else 0.0

    def check(self) -> None:
        assert sum(self.statuses.values()) > 0, "no request was answered"
        assert set(self.statuses) <= DESIGNED, f"{dict(self.statuses)}: {self.unexpected}"


class Writer:
    """tests/acceptance/writer.py in its own process: rows changed at `rate` per second through
    the ORM (signals and triggers), QuerySet.update, and raw SQL, until stopped."""

    def __init__(self, stack: Stack, rate: float = 50.0):
        self.proc = procs.spawn("writer", [sys.executable, "-m", "tests.acceptance.writer", "--rate", str(rate)],
                                stack.tmp / "writer.log", cwd=ROOT, env=stack.env, append=True)
        self.summary: dict = {}

    def __enter__(self) -> Writer:
        self.proc.wait_for_output("writing", timeout=30)
        return self

    def __exit__(self, *exc) -> None:
        self.proc.stop(grace=20)
        lines = [line for line in self.proc.output().splitlines() if line.startswith("{")]
        assert lines, f"the writer left no summary:\n{self.proc.tail()}"
        self.summary = orjson.loads(lines[-1])
