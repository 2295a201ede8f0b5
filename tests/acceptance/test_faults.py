"""Faults under load, in CI (tests/acceptance/faults.py has the load and the faults): each
scenario ends with `cache_verify --all` clean within its stated time, no 5xx and no
connection error for the readers, and the web processes answering what the cache holds.
The figures go to the README's Guarantees table (PREWARM_FAULT_REPORT=file collects them)."""
import pytest

from .faults import outbox_rows, postgres, run_fault

pytestmark = pytest.mark.acceptance

PROFILES = 20_000


@pytest.fixture(scope="module")
def fault_pg(tmp_path_factory):
    pg = postgres(tmp_path_factory, PROFILES)
    yield pg
    pg.stop()


def test_worker_killed_mid_warmup_and_mid_invalidation(stack):
    figures = run_fault(stack, "workers")
    assert figures["restarts"].get("warmup") and figures["restarts"].get("worker")


def test_cache_redis_restarted_empty(stack):
    run_fault(stack, "cache")
    with stack.db() as conn:
        refills = conn.execute("SELECT count(*) FROM ops_warmupjob WHERE created_by LIKE 'refill%%'").fetchone()[0]
    assert refills >= 1, "beat's refill check started no full warm-up"


def test_broker_stopped_for_30s(stack):
    run_fault(stack, "broker")
    assert outbox_rows(stack) == 0, "the outbox drained"


def test_relay_killed_mid_batch_then_both_restarted(stack):
    figures = run_fault(stack, "relays")
    assert figures["restarts"].get("relay", 0) >= 2 and figures["restarts"].get("relay2", 0) >= 1


def test_postgres_restarted(stack):
    figures = run_fault(stack, "postgres")
    assert not figures["restarts"], "every process reconnects by itself"


def test_cache_redis_out_of_memory_evicts(stack):
    # Evicted entries are missing, never stale: the miss path builds what readers ask for.
    run_fault(stack, "memory")


def test_web_redis_connections_closed(stack):
    figures = run_fault(stack, "connections")
    assert figures["connections_killed"] > 0
