"""core.metrics: declarations, histogram bucketing and cumulative snapshots, the in-memory store."""
import pytest

from core import metrics
from core.metrics import Counter, Histogram, MemoryStore
from workers import lag

LAG = metrics.INVALIDATION_LAG


@pytest.fixture
def store(monkeypatch):
    memory = MemoryStore()
    monkeypatch.setattr(metrics, "STORE", memory)
    return memory


def test_a_value_on_a_bucket_bound_falls_in_that_bucket_as_prometheus_le_means():
    h = Histogram("prewarm_test_seconds", "t", buckets=(0.01, 0.1, 1.0))
    assert [h.bucket(v) for v in (0.0, 0.01, 0.0100001, 0.1, 0.5, 1.0, 1.01, 1e9)] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [h.bucket_label(i) for i in range(4)] == ["0.01", "0.1", "1.0", "+Inf"]


def test_snapshot_is_cumulative_and_ends_with_count_at_inf():
    h = Histogram("prewarm_test_seconds", "t", buckets=(0.01, 0.1, 1.0))
    raw: dict[str, float] = {}
    for value, count in ((0.005, 2), (0.05, 1), (0.07, 3), (5.0, 1)):
        for field, amount in h.increments(value, count):
            raw[field] = raw.get(field, 0) + amount
    snap = h.snapshots(raw)[()]
    assert snap.buckets == [("0.01", 2), ("0.1", 6), ("1.0", 6), ("+Inf", 7)]
    assert snap.count == 7
    assert snap.sum == pytest.approx(0.005 * 2 + 0.05 + 0.07 * 3 + 5.0)


def test_an_unlabelled_histogram_with_no_observations_is_all_zeros():
    snap = LAG.snapshots({})[()]
    assert [n for _, n in snap.buckets] == [0] * (len(LAG.buckets) + 1)
    assert (snap.count, snap.sum) == (0, 0.0)


def test_labelled_histogram_keeps_one_series_per_label_set():
    hops = Histogram("prewarm_test_hop_seconds", "t", buckets=(0.01,), labels=("hop",))
    raw: dict[str, float] = {}
    for hop, value in (("notify", 0.001), ("notify", 0.5), ("written", 0.002)):
        for field, amount in hops.increments(value, 1, (hop,)):
            raw[field] = raw.get(field, 0) + amount
    raw["count"] = 99  # not a field this labelled histogram writes
    series = hops.snapshots(raw)
    assert set(series) == {("notify",), ("written",)}
    assert series["notify",].buckets == [("0.01", 1), ("+Inf", 2)]
    assert series["written",].count == 1


def test_worker_lag_observation_lands_in_its_bucket_with_one_raw_sample(store):
    assert lag.observe(100.0, count=3, now=100.004) == pytest.approx(0.004)
    snap = metrics.snapshot(LAG)
    assert dict(snap.buckets)["0.0025"] == 0 and dict(snap.buckets)["0.005"] == 3
    assert snap.count == 3 and snap.sum == pytest.approx(0.012)
    assert store.recent_samples(LAG) == [pytest.approx(0.004)] * 3  # one per entry, as the buckets count


def test_worker_lag_is_never_negative_and_needs_a_commit_time(store):
    assert lag.observe(200.0, now=100.0) == 0.0  # the committer's clock ran ahead
    assert lag.observe(None) is None
    assert lag.observe(100.0, count=0, now=101.0) is None
    assert metrics.snapshot(LAG).count == 1


def test_a_time_edge_rebuild_is_timed_apart_from_the_lag_of_changes(store):
    """Thousands of edges a warm-up queued, each run when its ETA timer fired, would swamp
    the p99 of the changes' lag: their lateness has its own histogram."""
    assert lag.observe(100.0, count=2, now=100.2, edge=True) == pytest.approx(0.2)
    assert metrics.snapshot(LAG).count == 0
    assert metrics.snapshot(metrics.EDGE_LATENESS).count == 2
    assert store.recent_samples(metrics.EDGE_LATENESS) == [pytest.approx(0.2)] * 2


def test_hops_come_from_the_stamps_a_task_collected_and_are_never_negative(store):
    stamps = {"committed": 10.0, "seen": 10.001, "sent": 10.0015, "started": 10.004, "read": 10.005, "written": 10.0045}
    found = lag.observe_hops(stamps, count=2)
    assert found == pytest.approx({"notify": 0.001, "relay": 0.0005, "queue": 0.0025, "read": 0.001, "write": 0.0})
    assert metrics.snapshot(metrics.PIPELINE_HOPS, ("queue",)).count == 2
    assert store.recent_samples(metrics.PIPELINE_HOPS, ("queue",)) == [pytest.approx(0.0025)] * 2
    # the signal path has no relay: those hops are left out, not counted as 0
    assert set(lag.hops({"committed": 1.0, "sent": 1.1, "started": 1.2})) == {"queue"}


def test_raw_samples_are_bounded_newest_first():
    h = Histogram("prewarm_test_seconds", "t", buckets=(1.0,), samples_kept=3)
    memory = MemoryStore()
    for v in (1.0, 2.0, 3.0, 4.0):
        memory.observe(h, v)
    assert memory.recent_samples(h) == [4.0, 3.0, 2.0]


def test_counter_fields_round_trip_by_declaration():
    memory = MemoryStore()
    memory.add([(metrics.REBUILDS, ("profile",), 2), (metrics.API_HITS, ("epg", "local"), 5)])
    memory.add([(metrics.REBUILDS, ("profile",), 1), (metrics.REBUILDS_REFUSED, ("profile",), 0)])
    assert memory.counter_fields()["rebuilds:profile"] == 3  # the field tests and operators read
    values = metrics.counter_values({**memory.counter_fields(), "refused:profile": 7, "rebuilds": 1})
    assert values[metrics.REBUILDS] == {("profile",): 3}
    assert values[metrics.REBUILDS_REFUSED] == {("profile",): 0}
    assert values[metrics.API_HITS] == {("epg", "local"): 5}
    assert values[metrics.API_MISSES] == {}


def test_label_values_must_match_the_declaration():
    c = Counter("prewarm_test", "t", ("family",))
    assert c.field(("profile",)) == "test:profile"
    with pytest.raises(ValueError):
        c.field(())
    with pytest.raises(ValueError):
        c.field(("a:b",))


def test_declarations_have_valid_unique_names():
    assert len({m.short for m in metrics.METRICS.values()}) == len(metrics.METRICS)
    with pytest.raises(ValueError):
        metrics._declare(Counter(metrics.REBUILDS.name, "again", ("family",)))
    with pytest.raises(ValueError):
        Counter("rebuilds", "no prefix")
    with pytest.raises(ValueError):
        Histogram("prewarm_x_seconds", "t", buckets=(1.0, 0.5))


def test_gauges_are_set_not_added_and_read_back_by_declaration():
    memory = MemoryStore()
    memory.set([(metrics.VERIFY_LAST_CYCLE, (), 100.0)])
    memory.set([(metrics.VERIFY_LAST_CYCLE, (), 250.5)])
    values = metrics.gauge_values({**memory.gauge_fields(), "gone_gauge": 1.0})
    assert values[metrics.VERIFY_LAST_CYCLE] == {(): 250.5}
    assert metrics.VERIFY_DRIFT.field(("profile", "stale")) == "verify_drift:profile:stale"
