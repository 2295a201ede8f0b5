"""The pipeline report's targets table (bench.pipeline.targets): pure, from measured results."""
from bench.pipeline import lag_grew, targets


def _lag(p50, p99, first, last, rate):
    return {"p50": p50, "p99": p99, "first_third_p50": first, "last_third_p50": last, "rate": rate}


def _verdicts(rows):
    return {name: verdict for name, _measured, verdict in rows}


def test_each_target_is_met_missed_or_not_run():
    lags = {200: _lag(2.5, 12.0, 2.4, 2.6, 199.8), 2000: _lag(4.0, 20.0, 4.0, 9.0, 1998.0)}
    burst = {"converge_s": 2.1, "rows": 100_000, "profiles": 85_000}
    fan = {"converge_s": 0.31, "viewers": 1_000_000}
    v = _verdicts(targets(lags, 12_000, 60, True, burst, fan))
    assert v["200/s for 60 s: p50 <= 3 ms"] == "met"
    assert v["200/s for 60 s: p99 <= 10 ms"] == "MISSED"
    assert v["2,000/s for 60 s: p99 <= 25 ms"] == "met"
    assert v["2,000/s: the lag does not grow during the run"] == "MISSED"  # 4 -> 9 ms
    assert v["highest rate with p99 <= 100 ms: >= 10,000/s"] == "met"
    assert v["1 UPDATE of 100,000 subscriptions converges <= 3 s"] == "met"
    assert v["a licence change over 1M viewers <= 0.3 s"] == "MISSED"


def test_a_smaller_run_does_not_claim_the_targets():
    burst = {"converge_s": 0.7, "rows": 10_000, "profiles": 9_000}
    fan = {"converge_s": 0.1, "viewers": 100_000}
    v = _verdicts(targets({}, None, 15, False, burst, fan))
    assert v["200/s for 60 s: p50 <= 3 ms"] == "not run"
    assert v["highest rate with p99 <= 100 ms: >= 10,000/s"] == "not run"
    # Fast, but on a tenth of the data: not the target's measurement.
    assert v["1 UPDATE of 100,000 subscriptions converges <= 3 s"] == "MISSED"
    assert v["a licence change over 1M viewers <= 0.3 s"] == "MISSED"
    swept_to_nothing = _verdicts(targets({}, None, 15, True, None, None))
    assert swept_to_nothing["highest rate with p99 <= 100 ms: >= 10,000/s"] == "MISSED"


def test_noise_is_not_growth():
    assert not lag_grew(_lag(0, 0, 5.0, 6.5, 0))  # +1.5 ms
    assert not lag_grew(_lag(0, 0, 20.0, 24.0, 0))  # +20 %
    assert lag_grew(_lag(0, 0, 5.0, 7.5, 0))
