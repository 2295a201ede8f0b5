"""Faults under load: the whole deployment (tests/acceptance/stack.py: web, two invalidation
workers, the warm-up worker, beat and two relays, each restarted by a supervisor when it dies)
serves readers and takes a steady write stream while one part fails. Each scenario ends with
`cache_verify --all` finding nothing missing or stale within a stated time, and the web
processes answering what the cache holds. The figures go to the README's Guarantees table.

Readers may see only 200 and designed refusals (403): no 5xx, no connection error.
"""
import json
import os
import signal
import time

import pytest
import requests
from django.test import override_settings

from api import tokens
from api.entries import parse_class, parse_profile, profile_body
from core import keys
from tests.conftest import RedisServer
from tests.waiting import wait_for

from .stack import Postgres, Readers, Stack, Viewers, Writer, seed_template

pytestmark = pytest.mark.acceptance

PROFILES = 20_000
VIEWERS = 300
WRITES_PER_S = 50
LOAD_BEFORE_S = 6  # load runs this long before the fault, and AFTER_S after it healed
AFTER_S = 6
REPORT = os.environ.get("PREWARM_FAULT_REPORT")  # a JSON-lines file for the figures, when set


def _secrets():
    from django.conf import settings

    return {"SECRET_KEY": settings.SECRET_KEY, "PREWARM_TOKEN_KEY": settings.PREWARM_TOKEN_KEY}


@pytest.fixture(scope="module")
def fault_pg(tmp_path_factory):
    work = tmp_path_factory.mktemp("faults")
    pg = Postgres(work).start()
    scratch = RedisServer(work / "scratch").start()
    try:
        seed_template(pg, scratch.url, PROFILES, _secrets())
    finally:
        scratch.stop()
    yield pg
    pg.stop()


@pytest.fixture
def stack(fault_pg, tmp_path):
    deployment = Stack(fault_pg, tmp_path, _secrets())
    try:
        yield deployment.start()
    finally:
        deployment.stop()


def run(stack, fault, *, converge=60, allow_missing=False, name=""):
    """Load, the fault, load again; then the readers' answers, convergence and the API's bytes."""
    viewers = Viewers.sample(stack, VIEWERS)
    with Readers(stack.url, viewers) as readers, Writer(stack, WRITES_PER_S) as writer:
        time.sleep(LOAD_BEFORE_S)
        detail = fault() or {}
        time.sleep(AFTER_S)
    stack.wait_ready()
    converged = stack.converge(converge, allow_missing)
    readers.check()
    mismatched = api_against_cache(stack, viewers)
    assert not mismatched, "\n".join(mismatched[:3])
    figures = {
        "scenario": name, "reads": sum(readers.statuses.values()), "statuses": dict(readers.statuses),
        "p99_ms": readers.p99_ms(), "writes": writer.summary, "converged_s": round(converged, 1),
        "restarts": dict(stack.restarts), **detail,
    }
    print(json.dumps(figures))
    if REPORT:
        with open(REPORT, "a") as out:
            out.write(json.dumps(figures) + "\n")
    return figures


def api_against_cache(stack, viewers) -> list[str]:
    """Each web process's answer (in-process layer included) against the entries in Redis."""
    client = stack.cache_client()
    found = []
    with override_settings(PREWARM_KEY_PREFIX="pw"):  # the stack's (the default)
        for pk, token in viewers.tokens:
            for _ in range(2):  # new connections: each of granian's two processes answers some
                response = requests.get(stack.url + "/api/v1/me/profile", timeout=10,
                                        headers={"Authorization": f"Bearer {token}", "Connection": "close"})
                profile = parse_profile(pk, client.hgetall(keys.profile_key(pk)))
                cls = parse_class(client.hgetall(profile.class_key)) if profile and not profile.deleted else None
                if profile is None or cls is None:
                    continue  # not cached (evicted): the miss path's answer is what verify checked
                if response.status_code != 200 or response.content != profile_body(profile, cls):
                    found.append(f"profile {pk}: served {response.status_code} {response.content!r}, "
                                 f"cached {profile_body(profile, cls)!r}")
    return found


def ops_headers():
    return {"Authorization": f"Bearer {tokens.issue(0, ops=True, ttl=3600)}"}


def test_worker_killed_mid_warmup_and_mid_invalidation(stack):
    def fault():
        created = requests.post(stack.url + "/api/v1/ops/warmups", json={"all": True}, headers=ops_headers(),
                                timeout=10)
        assert created.status_code == 202, created.text
        job = created.json()["id"]

        def progress():
            return requests.get(f"{stack.url}/api/v1/ops/warmups/{job}", headers=ops_headers(), timeout=10).json()

        at_kill = wait_for(lambda: (p := progress())["done"] > 0 and p, timeout=30, message="the job under way")
        assert at_kill["state"] == "running" and at_kill["done"] < at_kill["total"], at_kill
        stack.kill("warmup")  # mid-chunk
        stack.kill("worker")  # mid-batch: writes flow at WRITES_PER_S
        done = wait_for(lambda: (p := progress())["state"] in ("done", "failed") and p, timeout=120,
                        interval=0.5, message="the warm-up job to end")
        assert done["state"] == "done" and done["failed"] == 0, done
        return {"job_done_at_kill": at_kill["done"], "job_total": at_kill["total"]}

    figures = run(stack, fault, converge=90, name="worker killed -9 mid warm-up and mid invalidation")
    assert figures["restarts"].get("warmup") and figures["restarts"].get("worker")


def test_cache_redis_restarted_empty(stack):
    def fault():
        stack.cache.stop()  # kill -9: no persistence, everything is gone
        time.sleep(3)  # reads are answered from Postgres meanwhile
        stack.cache.start()
        return {"redis_down_s": 3}

    run(stack, fault, converge=90, name="cache Redis restarted empty")
    with stack.db() as conn:
        refills = conn.execute("SELECT count(*) FROM ops_warmupjob WHERE created_by LIKE 'refill%%'").fetchone()[0]
    assert refills >= 1, "beat's refill check started no full warm-up"


def test_broker_stopped_for_30s(stack):
    def outbox():
        with stack.db() as conn:
            return conn.execute("SELECT count(*) FROM prewarm_outbox").fetchone()[0]

    def fault():
        stack.broker.stop()
        time.sleep(30)
        backlog = outbox()
        stack.broker.start()
        assert backlog > 0, "writes went on, so the outbox must have grown"
        return {"outbox_at_restart": backlog, "broker_down_s": 30}

    figures = run(stack, fault, converge=90, name="broker stopped 30 s")
    assert outbox() == 0, "the outbox drained"
    assert figures["outbox_at_restart"] > 0


def test_relay_killed_mid_batch_then_both_restarted(stack):
    def fault():
        stack.kill("relay")
        time.sleep(4)  # the other relay carries the load alone
        stack.procs["relay2"].signal(signal.SIGTERM)  # then it is restarted too
        stack.kill("relay")
        return {}

    figures = run(stack, fault, converge=60, name="relay killed -9 mid-batch, then both restarted")
    assert figures["restarts"].get("relay", 0) >= 2 and figures["restarts"].get("relay2", 0) >= 1


def test_postgres_restarted(stack):
    def fault():
        started = time.monotonic()
        stack.pg.stop()
        stack.pg.start()
        return {"postgres_down_s": round(time.monotonic() - started, 1)}

    figures = run(stack, fault, converge=90, name="Postgres restarted")
    assert not figures["restarts"], "every process reconnects by itself"


def test_cache_redis_out_of_memory_evicts(stack):
    client = stack.cache_client()

    def fault():
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory-policy", "allkeys-lru")
        client.config_set("maxmemory", int(used * 0.7))
        time.sleep(8)
        evicted = int(client.info("stats")["evicted_keys"])
        assert evicted > 0
        return {"evicted_keys": evicted, "maxmemory_of_used": 0.7}

    # Evicted entries are missing, never stale: the miss path builds what readers ask for.
    run(stack, fault, converge=60, allow_missing=True, name="maxmemory allkeys-lru")


def test_web_redis_connections_closed(stack):
    client = stack.cache_client()

    def fault():
        killed = 0
        for _ in range(3):
            killed += client.client_kill_filter(_type="normal", skipme=True)
            time.sleep(1)
        client.config_set("timeout", 1)  # the server closes every connection idle for 1 s
        time.sleep(4)
        client.config_set("timeout", 0)
        return {"connections_killed": killed}

    figures = run(stack, fault, converge=60, name="Redis connections closed (CLIENT KILL, idle timeout)")
    assert figures["connections_killed"] > 0
