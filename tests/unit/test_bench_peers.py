"""The bench peers' pure parts: their bytes equal the product's, and where each peer writes."""
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest

from api.entries import playback_body
from bench import peers
from bench.peers import naive
from core.builders import ChannelFacts, ProgrammeFacts, assemble_epg, build_epg_fragment
from core.entitlement import GEO_BLOCKED, ISP_RESTRICTED, NOT_SUBSCRIBED

AWKWARD = 'Ça va? «Olé» — 東京 "quoted" back\\slash tab\t line\n nul\x00 del\x7f sep\u2028 emoji 🎬'
ENV = {"REDIS_URL": "redis://127.0.0.1:6379/0", "PREWARM_KEY_PREFIX": "bench", "DATABASE_URL": "postgres://x/y"}


def test_json_dumps_and_orjson_give_the_same_bytes_for_a_guide_with_non_ascii_text():
    zone = ZoneInfo("Europe/Madrid")
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # the night the clocks go forward
    programme = naive.programme_doc(start, start + timedelta(hours=2), AWKWARD, AWKWARD, "drama", "12+", zone)
    channels = [(7, "tv-7", "Télé «7»", 7, [programme] * 3), (8, "x", "", 8, [])]
    doc = naive.epg_doc(date(2026, 3, 29), "Europe/Madrid", channels)
    assert naive.json_dumps(doc) == orjson.dumps(doc)
    assert naive.DUMPS["json"](doc) == naive.DUMPS["orjson"](doc)


def test_the_naive_guide_document_is_the_products_assembled_guide():
    day, tz = date(2026, 10, 25), "Europe/London"  # 25 hours long
    channel = ChannelFacts(3, "news-3", "Nouvelles ü", 3)
    shows = [
        ProgrammeFacts(datetime(2026, 10, 24, 23, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
                       AWKWARD, "synopsis é", "news", "0+"),
        ProgrammeFacts(datetime(2026, 10, 25, 1, 0, tzinfo=UTC), datetime(2026, 10, 25, 2, 15, tzinfo=UTC), "B"),
    ]
    zone = ZoneInfo(tz)
    doc = naive.epg_doc(day, tz, [(channel.id, channel.code, channel.name, channel.number, [
        naive.programme_doc(p.starts_at, p.ends_at, p.title, p.synopsis, p.genre, p.age_rating, zone) for p in shows
    ])])
    product = assemble_epg(day, tz, [build_epg_fragment(channel, shows, day, tz)])
    assert naive.json_dumps(doc) == product
    assert orjson.dumps(doc) == product


@pytest.mark.parametrize("reason", [None, GEO_BLOCKED, ISP_RESTRICTED, NOT_SUBSCRIBED, "some_new_reason"])
@pytest.mark.parametrize("dumps", ["json", "orjson"])
def test_a_naive_playback_answer_is_the_products(reason, dumps):
    status, doc = naive.playback_doc("sport-1", reason)
    assert (status, naive.DUMPS[dumps](doc)) == playback_body("sport-1", reason)


def test_each_caching_peer_writes_to_its_own_redis_db():
    for peer, db in (("django-redis", 11), ("cacheops", 12), ("cachalot", 13)):
        env = peers.server_env(peer, ENV)
        assert env["BENCH_PEER_REDIS_URL"] == f"redis://127.0.0.1:6379/{db}"
        assert env["PREWARM_KEY_PREFIX"] == "bench"
        assert peers.redis_scope(peer, ENV) == (f"redis://127.0.0.1:6379/{db}", "bench")
        assert env["DJANGO_SETTINGS_MODULE"].startswith("bench.peers.settings.")


def test_prewarm_keeps_the_bench_prefix_and_prewarm_cold_has_its_own():
    assert peers.server_env("prewarm", ENV)["PREWARM_KEY_PREFIX"] == "bench"
    assert peers.redis_scope("prewarm", ENV) == ("redis://127.0.0.1:6379/0", "bench")
    cold = peers.server_env("prewarm-cold", ENV)
    assert cold["PREWARM_KEY_PREFIX"] == "benchcold"
    assert peers.redis_scope("prewarm-cold", ENV) == peers.redis_scope("prewarm-cold", cold) == (
        "redis://127.0.0.1:6379/0", "benchcold")


def test_a_naive_peers_scope_is_a_prefix_nothing_uses_never_the_whole_db():
    for peer in ("naive", "naive-orjson"):
        url, prefix = peers.redis_scope(peer, ENV)
        assert prefix is not None
        assert prefix not in ("bench", "benchcold")
        assert peers.server_env(peer, ENV)["PREWARM_KEY_PREFIX"] == "bench"


def test_every_peer_has_a_settings_module_and_an_unknown_one_is_refused():
    assert set(peers.SETTINGS) == set(peers.PEERS)
    with pytest.raises(ValueError, match="unknown peer"):
        peers.server_env("memcached", ENV)


def test_redis_db_url_keeps_the_server_and_credentials():
    assert peers.redis_db_url("redis://:pw@cache:6380/0?timeout=1", 12) == "redis://:pw@cache:6380/12?timeout=1"
    assert peers.redis_db_url("redis://cache", 11) == "redis://cache/11"
