"""The freshness page's pure parts: percentiles from buckets, hit ratios, the SVG chart."""
from core.metrics import Snapshot
from ops import freshness


def snap(counts):
    """A Snapshot with per-bucket (not cumulative) counts over bounds 0.001, 0.01, +Inf."""
    bounds, running, buckets = ("0.001", "0.01", "+Inf"), 0, []
    for bound, n in zip(bounds, counts):
        running += n
        buckets.append((bound, running))
    return Snapshot(buckets, running, 0.0)


def test_a_percentile_is_the_bound_of_the_bucket_that_holds_it():
    s = snap([50, 45, 5])
    assert [freshness.percentile(s, p) for p in (50, 95, 99)] == ["0.001", "0.01", "+Inf"]
    assert freshness.percentile(snap([0, 0, 0]), 50) is None


def test_hit_ratios_split_every_read_between_the_layers():
    ratios = freshness.hit_ratios({("profile", "local"): 6, ("profile", "redis"): 3, ("epg", "redis"): 1},
                                  {("profile",): 1, ("class",): 2})
    assert ratios["profile"] == {"reads": 10, "local": 0.6, "redis": 0.3, "miss": 0.1}
    assert ratios["class"] == {"reads": 2, "local": 0.0, "redis": 0.0, "miss": 1.0}
    assert set(ratios) == {"profile", "epg", "class"}


def test_the_chart_has_one_bar_per_bucket_scaled_to_the_largest():
    bars = freshness.lag_bars(snap([2, 4, 0]))
    assert bars == [("1ms", 2), ("10ms", 4), ("more", 0)]
    svg = freshness.bar_chart(bars, height=100)
    assert svg.startswith("<svg") and svg.count("<rect") == 3
    assert 'height="100"' in svg and 'height="50"' in svg  # the largest bar is full height
    assert freshness.bar_chart([]) == ""
