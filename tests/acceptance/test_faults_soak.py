"""#13's load run, one per fault: two minutes of mixed load (reads across 100,000 viewers, 200
writes/s, a full warm-up job running) with the fault injected midway; the figures (errors,
p99, convergence) go to PREWARM_FAULT_REPORT when set. `make soak PYTEST_ARGS="-k faults"`."""
import pytest

from .faults import FAULTS, Load, postgres, run_fault

pytestmark = [pytest.mark.soak, pytest.mark.acceptance]

PROFILES = 100_000
MIXED = Load(viewers=PROFILES, writes_per_s=200, before_s=60, after_s=60, reads_per_s=300, warmup=True)


@pytest.fixture(scope="module")
def fault_pg(tmp_path_factory):
    pg = postgres(tmp_path_factory, PROFILES)
    yield pg
    pg.stop()


@pytest.mark.parametrize("fault", list(FAULTS))
def test_two_minutes_of_mixed_load_with_a_fault(stack, fault):
    figures = run_fault(stack, fault, MIXED)
    assert figures["load_s"] >= MIXED.before_s + MIXED.after_s
