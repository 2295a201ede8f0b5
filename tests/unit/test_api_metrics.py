"""api.metrics: the exposition of every declared metric, and the per-process counts it flushes."""
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api import metrics as api_metrics
from core import metrics
from core.metrics import MemoryStore


class _Families:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


def exposition(families) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry).decode()


@pytest.fixture
def store(monkeypatch):
    memory = MemoryStore()
    monkeypatch.setattr(metrics, "STORE", memory)
    return memory


def test_every_declared_metric_is_exposed_with_its_help_and_labels(store):
    for counter in metrics.counters():
        store.add([(counter, tuple(f"v{i}" for i in range(len(counter.labels))), 4)])
    for histogram in metrics.histograms():
        store.observe(histogram, 0.003, values=tuple(f"v{i}" for i in range(len(histogram.labels))))
    store.set([(gauge, tuple(f"v{i}" for i in range(len(gauge.labels))), 1234.5) for gauge in metrics.gauges()])
    families, failed = api_metrics.declared_families(store)
    assert failed == []
    parsed = {f.name: f for f in text_string_to_metric_families(exposition(families))}
    for metric in metrics.METRICS.values():
        family = parsed[metric.name]
        assert family.documentation == metric.help
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == set(metric.labels), sample
    assert 'prewarm_rebuilds_total{family="v0"} 4.0' in exposition(families)
    assert 'prewarm_api_hits_total{family="v0",layer="v1"} 4.0' in exposition(families)
    assert 'prewarm_invalidation_lag_seconds_bucket{le="0.005"} 1.0' in exposition(families)
    assert 'prewarm_verify_drift_total{family="v0",kind="v1"} 4.0' in exposition(families)
    assert "prewarm_verify_last_cycle_timestamp_seconds 1234.5" in exposition(families)


def test_an_unreadable_store_is_named_in_the_scrape_errors():
    class Down(MemoryStore):
        def counter_fields(self):
            raise ConnectionError("redis down")

        def gauge_fields(self):
            raise ConnectionError("redis down")

        def histogram_fields(self, histogram):
            raise ConnectionError("redis down")

    families, failed = api_metrics.declared_families(Down())
    assert families == []
    assert failed == ["counters", "gauges", *(h.short for h in metrics.histograms())]


def test_flush_adds_only_what_was_counted_since_the_last_flush(store, monkeypatch):
    hits = api_metrics.LocalCounts(metrics.API_HITS)
    misses = api_metrics.LocalCounts(metrics.API_MISSES)
    monkeypatch.setattr(api_metrics, "LOCAL_COUNTS", (hits, misses))
    hits["profile", "local"] += 2
    misses["epg"] += 1
    api_metrics.flush()
    hits["profile", "local"] += 3
    api_metrics.flush()
    api_metrics.flush()
    assert store.counter_fields() == {"api_hits:profile:local": 5, "api_misses:epg": 1}


def test_local_gauges_come_from_the_registered_provider(monkeypatch):
    monkeypatch.setattr(api_metrics, "_local_gauges", {})
    assert api_metrics.local_families() == []
    api_metrics.register_local_gauges(lambda: api_metrics.LocalGauges(3, 1024, True))
    text = exposition(api_metrics.local_families())
    assert "prewarm_api_local_entries 3.0" in text
    assert "prewarm_api_local_bytes 1024.0" in text
    assert "prewarm_api_tracking_up 1.0" in text


def test_a_failing_part_is_named_and_the_rest_of_the_scrape_still_answers(store, monkeypatch):
    def broken():
        raise RuntimeError("tracker gone")

    monkeypatch.setattr(api_metrics.queues, "outbox", lambda: (2, 1.5))
    monkeypatch.setattr(api_metrics.queues, "depths", lambda: {"invalidate": 0, "warmup": 0})
    monkeypatch.setattr(api_metrics, "warmup_families", lambda: [])  # Postgres: not in a unit test
    monkeypatch.setattr(api_metrics, "_local_gauges", {})
    api_metrics.register_local_gauges(broken)
    text = exposition(list(api_metrics._Collector(store).collect()))
    assert 'prewarm_scrape_error{part="local"} 1.0' in text
    assert "prewarm_outbox_backlog 2.0" in text
    assert 'prewarm_queue_depth{queue="invalidate"} 0.0' in text
    assert "prewarm_invalidation_lag_seconds_count 0.0" in text
    assert "prewarm_api_tracking_up" not in text


def test_a_count_with_wrong_label_values_fails_where_it_is_written():
    hits = api_metrics.LocalCounts(metrics.API_HITS)
    hits["profile", "local"] += 1
    assert hits == {("profile", "local"): 1}
    with pytest.raises(ValueError):
        hits["profile"] += 1
    assert hits == {("profile", "local"): 1}
