"""Faults under load, shared by the CI scenarios (test_faults.py) and the two-minute mixed runs
(test_faults_soak.py): the load around a fault, what it must end with, and each fault.

The whole deployment (stack.py: web, two invalidation workers, the warm-up worker, beat and
two relays, each restarted by a supervisor when it dies) serves readers and takes a steady
write stream while one part fails. A run ends with `cache_verify --all` finding nothing
missing or stale within a stated time, and the web processes answering what the cache holds.
Readers may see only 200 and designed refusals (403): no 5xx, no connection error.
"""
from __future__ import annotations

import json
import os
import random
import signal
import time
from dataclasses import dataclass

import requests
from django.test import override_settings

from api import tokens
from api.entries import parse_class, parse_profile, profile_body
from core import keys
from tests.conftest import RedisServer
from tests.waiting import wait_for

from .stack import Postgres, Readers, Viewers, Writer, seed_template

CHECKED = 300  # viewers whose answers are compared with the cache after a run
REPORT = os.environ.get("PREWARM_FAULT_REPORT")  # a JSON-lines file for the figures, when set


@dataclass(frozen=True)
class Load:
    viewers: int = 300  # sampled profiles the readers read as
    writes_per_s: float = 50
    before_s: float = 6  # load runs this long before the fault, and after_s after it healed
    after_s: float = 6
    reads_per_s: float = 150
    warmup: bool = False  # a full warm-up job runs from the start


CI = Load()


def secrets() -> dict:
    from django.conf import settings

    return {"SECRET_KEY": settings.SECRET_KEY, "PREWARM_TOKEN_KEY": settings.PREWARM_TOKEN_KEY}


def postgres(tmp_path_factory, profiles: int) -> Postgres:
    """The fault suite's own Postgres with a template database of `profiles` viewers."""
    work = tmp_path_factory.mktemp("faults")
    pg = Postgres(work).start()
    scratch = RedisServer(work / "scratch").start()
    try:
        seed_template(pg, scratch.url, profiles, secrets())
    finally:
        scratch.stop()
    return pg


def ops_headers() -> dict:
    return {"Authorization": f"Bearer {tokens.issue(0, ops=True, ttl=3600)}"}


def start_full_warmup(stack) -> int:
    created = requests.post(stack.url + "/api/v1/ops/warmups", json={"all": True}, headers=ops_headers(), timeout=10)
    assert created.status_code == 202, created.text
    return created.json()["id"]


def job_progress(stack, job: int) -> dict:
    return requests.get(f"{stack.url}/api/v1/ops/warmups/{job}", headers=ops_headers(), timeout=10).json()


def run(stack, fault, *, load: Load = CI, converge=60, allow_missing=False, name=""):
    """Load, the fault, load again; then the readers' answers, convergence and the API's bytes."""
    viewers = Viewers.sample(stack, load.viewers)
    started = time.monotonic()
    with Readers(stack.url, viewers, rate=load.reads_per_s) as readers, Writer(stack, load.writes_per_s) as writer:
        if load.warmup:
            start_full_warmup(stack)
        time.sleep(load.before_s)
        detail = fault(stack) or {}
        time.sleep(load.after_s)
    loaded = time.monotonic() - started
    stack.wait_ready()
    converged = stack.converge(converge, allow_missing)
    readers.check()
    mismatched = api_against_cache(stack, viewers)
    assert not mismatched, "\n".join(mismatched[:3])
    figures = {
        "scenario": name, "reads": sum(readers.statuses.values()), "statuses": dict(readers.statuses),
        "p99_ms": readers.p99_ms(), "writes": writer.summary, "converged_s": round(converged, 1),
        "restarts": dict(stack.restarts), "load_s": round(loaded), **detail,
    }
    print(json.dumps(figures))
    if REPORT:
        with open(REPORT, "a") as out:
            out.write(json.dumps(figures) + "\n")
    return figures


def api_against_cache(stack, viewers) -> list[str]:
    """Each web process's answer (in-process layer included) against the entries in Redis, for
    CHECKED of the viewers, read before and after the request: a request may itself rebuild
    what it reads (a class missing after an eviction rebuilds the profile, with a new
    built_at), so it may answer either."""
    client = stack.cache_client()
    found = []

    def cached(pk):
        profile = parse_profile(pk, client.hgetall(keys.profile_key(pk)))
        cls = parse_class(client.hgetall(profile.class_key)) if profile and not profile.deleted else None
        return profile_body(profile, cls) if profile and cls else None  # None: not cached (evicted)

    with override_settings(PREWARM_KEY_PREFIX="pw"):  # the stack's (the default)
        for pk, token in random.Random(0).sample(viewers.tokens, min(CHECKED, len(viewers.tokens))):
            for _ in range(2):  # new connections: each of granian's two processes answers some
                before = cached(pk)
                response = requests.get(stack.url + "/api/v1/me/profile", timeout=10,
                                        headers={"Authorization": f"Bearer {token}", "Connection": "close"})
                after = cached(pk)
                if None in (before, after):
                    continue  # the miss path answered: what verify checked
                if response.status_code != 200 or response.content not in (before, after):
                    found.append(f"profile {pk}: served {response.status_code} {response.content!r}, "
                                 f"cached before {before!r}, after {after!r}")
    return found




# -- the faults: each takes the running stack, returns figures for the report ---------------


def kill_workers(stack) -> dict:
    """kill -9 the warm-up worker mid-chunk of a full warm-up, and an invalidation worker
    mid-batch (writes flow); the supervisor restarts both; the job ends done."""
    job = start_full_warmup(stack)  # or the one already running: one job per scope
    at_kill = wait_for(lambda: (p := job_progress(stack, job))["done"] > 0 and p, timeout=30,
                       message="the job under way")
    assert at_kill["state"] == "running" and at_kill["done"] < at_kill["total"], at_kill
    stack.kill("warmup")
    stack.kill("worker")
    done = wait_for(lambda: (p := job_progress(stack, job))["state"] in ("done", "failed") and p, timeout=180,
                    interval=0.5, message="the warm-up job to end")
    assert done["state"] == "done" and done["failed"] == 0, done
    return {"job_done_at_kill": at_kill["done"], "job_total": at_kill["total"]}


def restart_cache_empty(stack) -> dict:
    """The cache Redis killed (no persistence: everything is gone) and back after 3 s."""
    stack.cache.stop()
    time.sleep(3)  # reads are answered from Postgres meanwhile
    stack.cache.start()
    return {"down_s": 3}


def stop_broker(stack) -> dict:
    """The broker down for 30 s while writes continue; the outbox keeps every change."""
    stack.broker.stop()
    time.sleep(30)
    backlog = outbox_rows(stack)
    stack.broker.start()
    assert backlog > 0, "writes went on, so the outbox must have grown"
    return {"down_s": 30, "outbox_at_restart": backlog}


def kill_relays(stack) -> dict:
    """One relay killed -9 while the other runs, then both restarted."""
    stack.kill("relay")
    time.sleep(4)  # the other relay carries the load alone
    stack.procs["relay2"].signal(signal.SIGTERM)
    stack.kill("relay")
    return {}


def restart_postgres(stack) -> dict:
    """Postgres fast shutdown and start: every session ends, new ones wait for it."""
    started = time.monotonic()
    stack.pg.stop()
    stack.pg.start()
    return {"down_s": round(time.monotonic() - started, 1)}


def fill_cache_memory(stack) -> dict:
    """maxmemory at 70% of what the cache holds, allkeys-lru: entries are evicted under load."""
    client = stack.cache_client()
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.config_set("maxmemory", int(used * 0.7))
    time.sleep(8)
    evicted = int(client.info("stats")["evicted_keys"])
    assert evicted > 0
    return {"evicted_keys": evicted}


def close_connections(stack) -> dict:
    """Every client connection of the cache Redis killed three times, then the server's idle
    timeout at 1 s for 4 s."""
    client = stack.cache_client()
    killed = 0
    for _ in range(3):
        killed += client.client_kill_filter(_type="normal", skipme=True)
        time.sleep(1)
    client.config_set("timeout", 1)
    time.sleep(4)
    client.config_set("timeout", 0)
    return {"connections_killed": killed}


def outbox_rows(stack) -> int:
    with stack.db() as conn:
        return conn.execute("SELECT count(*) FROM prewarm_outbox").fetchone()[0]


# name -> (fault, what it is, convergence allowed (s), missing entries allowed)
FAULTS = {
    "workers": (kill_workers, "worker killed -9 mid warm-up and mid invalidation", 90, False),
    "cache": (restart_cache_empty, "cache Redis restarted empty", 90, False),
    "broker": (stop_broker, "broker stopped 30 s", 90, False),
    "relays": (kill_relays, "relay killed -9 mid-batch, then both restarted", 60, False),
    "postgres": (restart_postgres, "Postgres restarted", 90, False),
    "memory": (fill_cache_memory, "maxmemory reached, allkeys-lru", 60, True),
    "connections": (close_connections, "Redis connections closed (CLIENT KILL, idle timeout)", 60, False),
}


def run_fault(stack, name: str, load: Load = CI) -> dict:
    fault, what, converge, allow_missing = FAULTS[name]
    return run(stack, fault, load=load, converge=converge, allow_missing=allow_missing, name=what)
