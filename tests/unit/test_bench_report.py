"""`bench run`'s report (bench.results, bench.report): pure, from rows a run measured."""
from bench.report import losses, main_table, markdown, targets
from bench.results import Results, Row, over_passes, spread


def _verdicts(res, full=True):
    return {t.name: t.verdict for t in targets(res, full)}


def _run() -> Results:
    res = Results(machine={"cores": 2, "interpreter": "Python 3.11", "profiles": 1_000_000})
    for peer, epg, playback in (("naive", 20, 900), ("django-redis", 3000, 4000), ("prewarm", 4500, 6000)):
        res.add(over_passes("api", peer, "epg_rps", [epg * 0.9, epg, epg * 1.1], "req/s"))
        res.add(over_passes("api", peer, "playback_rps", [playback, playback], "req/s"))
    res.add(Row("api", "prewarm", "django_floor_2k_rps", 8000, "req/s"))
    res.add(Row("api", "wsgi-2k", "floor_2k_rps", 19000, "req/s"))
    for writer in ("orm_save", "queryset_update", "bulk_create", "raw_sql_django", "psql_external"):
        res.add(Row("freshness", "prewarm", writer, 0.012, "s"))
        res.add(Row("freshness", "naive", writer, 0.004, "s"))
        res.add(Row("freshness", "django-redis", writer, 0.02 if writer == "orm_save" else None, "s"))
    return res


def test_a_pass_that_never_got_there_makes_the_row_null():
    assert over_passes("api", "p", "m", [1.0, None, 3.0], "s").value is None
    row = over_passes("api", "p", "m", [3.0, 1.0, 2.0], "s")
    assert (row.value, row.low, row.high, row.passes) == (2.0, 1.0, 3.0, 3)
    assert spread(row) == "2.000 s (1.000-3.000 s)"
    assert row.as_json() == {"scenario": "api", "peer": "p", "metric": "m", "value": 2.0, "unit": "s",
                             "min": 1.0, "max": 3.0, "passes": 3}


def test_targets_compare_prewarm_with_the_best_peer_and_its_floors():
    v = _verdicts(_run())
    assert v["epg: ahead of every peer on read throughput"] == "met"
    assert v["fresh within 1 s after every kind of writer"] == "met"
    assert v["warm EPG >= 100x the naive path"] == "met"  # 4500 / 20 = 225x
    assert v["warm playback >= 0.80 of Django's constant-bytes view"] == "MISSED"  # 6000 / 8000
    assert v["warm playback >= 0.60 of a constant WSGI app (same body size)"] == "MISSED"  # 0.32
    assert {t.name: t.measured for t in targets(_run(), True)}[
        "warm playback >= 0.60 of a constant WSGI app (same body size)"] == "0.32 (6,000 vs 19,000 req/s)"
    assert v["warm profile >= 0.60 of a constant WSGI app (same body size)"] == "not run"  # not measured
    assert v["warm epg >= 0.80 of Django's constant-bytes view"] == "not run"  # no EPG-size floor measured
    assert v["lag at 200/s for 60 s: p50 <= 3 ms"] == "not run"


def test_a_quick_run_claims_no_target_set_on_the_full_data():
    res = _run()
    res.add(Row("lag", "prewarm", "lag_200_p50", 2.0, "ms"))
    res.add(Row("warm", "prewarm", "vs_floor", 2.0, "x"))
    res.add(Row("warm", "prewarm", "warm_all", 10.0, "s"))
    res.add(Row("warm", "floor", "warm_all", 5.0, "s"))
    assert _verdicts(res, full=False)["lag at 200/s for 60 s: p50 <= 3 ms"] == "not claimed (smaller run)"
    assert _verdicts(res, full=False)["warm-up of 1M profiles <= 3.5x the raw floor"] == "not claimed (smaller run)"
    assert _verdicts(res, full=True)["lag at 200/s for 60 s: p50 <= 3 ms"] == "met"


def test_the_report_says_where_prewarm_loses():
    res = _run()
    res.add(Row("api", "cachalot", "playback_rps", 9000, "req/s"))
    said = " ".join(losses(res))
    assert "cachalot serves playback at 9,000 req/s against Prewarm's 6,000" in said
    assert "after orm_save, naive is fresh in 0.004 s, Prewarm in 0.012 s" in said
    assert "django-redis is fresh" not in said.replace("orm_save, django-redis", "")  # never != faster
    res.add(Row("api", "prewarm-cold", "epg_rps", 15, "req/s"))
    assert "cold (every read a miss), Prewarm serves epg at 15 req/s, below naive's 20" in " ".join(losses(res))


def test_the_main_table_has_every_peer_and_never_for_a_peer_that_stayed_stale():
    header, rows = main_table(_run())
    by_peer = {r[0]: dict(zip(header, r)) for r in rows}
    assert list(by_peer) == ["naive", "django-redis", "prewarm"]
    assert by_peer["django-redis"]["fresh: psql_external"] == "never"
    assert by_peer["django-redis"]["fresh: orm_save"] == "0.020 s"
    assert by_peer["naive"]["Prewarm's EPG x"] == "225.0x"
    text = "\n".join(markdown(_run(), title="t", full=True, plots=["throughput.png"], command="python -m bench run"))
    assert "## Main table" in text and "![throughput.png](throughput.png)" in text
