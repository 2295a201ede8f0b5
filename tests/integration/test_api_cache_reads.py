"""The API's cache layers against real Redis and Postgres: exact local cache, single flight,
Redis stopped and restarted under the views."""
import threading

import orjson
import pytest
from django.test import Client

from api import local_layer, metrics, redis_reads
from core import keys, redis_conn, services
from tests.sends import patch_send_task
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db

PROFILE = "/api/v1/me/profile"


@pytest.fixture
def warm(warm_world):
    return warm_world


def get(path, world, profile=None):
    return Client().get(path, **world.auth(profile or world.fan))


def doc(response):
    assert response.status_code == 200, response.content
    return orjson.loads(response.content)


def test_warm_requests_stay_in_process(warm):
    get(PROFILE, warm)
    before = dict(metrics.HITS)
    for _ in range(5):
        get(PROFILE, warm)
        get("/api/v1/me/playback/news", warm)
    assert metrics.HITS["profile", "local"] - before.get(("profile", "local"), 0) == 10
    assert metrics.HITS["profile", "redis"] == before.get(("profile", "redis"), 0)


def test_rebuilt_profile_is_seen_by_the_next_request(warm):
    from core.models import Subscription

    for i in range(10):
        assert doc(get(PROFILE, warm))["subscriptions"] == (["premium"] if i % 2 == 0 else ["sports"])
        Subscription.objects.filter(profile=warm.fan).update(plan=warm.sports if i % 2 == 0 else warm.premium)
        services.rebuild_profiles([warm.fan.pk])


def test_class_rebuild_reaches_playback_and_profile(warm):
    from core.models import Licence

    assert get("/api/v1/me/playback/sport1", warm).status_code == 200
    assert "sport1" in doc(get(PROFILE, warm))["channels"]
    Licence.objects.filter(channel=warm.sport1, region=warm.eu).delete()
    services.rebuild_regions([warm.eu.pk])
    denied = get("/api/v1/me/playback/sport1", warm)
    assert denied.status_code == 403 and orjson.loads(denied.content)["error"]["code"] == "geo_blocked"
    assert "sport1" not in doc(get(PROFILE, warm))["channels"]
    assert "sport1" not in [c["code"] for c in doc(get("/api/v1/me/epg", warm))["channels"]]


def test_fragment_rebuild_reaches_the_assembled_epg(warm):
    from core.models import Programme

    assert b"news show 0" in get("/api/v1/me/epg", warm).content
    Programme.objects.filter(channel=warm.news, title="news show 0").update(title="Breaking: renamed")
    services.rebuild_epg([warm.news.pk])
    body = get("/api/v1/me/epg", warm).content
    assert b"Breaking: renamed" in body and b"news show 0" not in body


def test_bytes_read_before_an_invalidation_are_never_stored(warm, redis_client):
    tracker = local_layer.get()
    cache = tracker.cache
    key = keys.profile_key(warm.fan.pk)
    ticket = cache.begin([key])
    replies, covered = redis_reads.call([("HGETALL", key)], tracked=True)
    assert covered and replies[0]
    redis_client.hset(key, "region", "ELSEWHERE")  # written after our read
    wait_for(lambda: (tracker.sync(), not ticket.valid)[1], 5, message="the invalidation")
    assert not cache.commit(ticket, "stale", object())
    assert cache.get("stale") is None


def test_losing_the_invalidation_connection_clears_the_cache_until_it_is_back(warm, redis_client, monkeypatch):
    from api.connection import RedisDown
    from core.models import Subscription

    get(PROFILE, warm)
    tracker = local_layer.get()
    assert tracker.alive and len(tracker.cache) > 0
    old_epoch = tracker.epoch
    # Keep it down: every reconnect fails until the patch is undone.
    reconnect = tracker._connect

    def refuse():
        raise RedisDown("test: invalidations unreachable")

    monkeypatch.setattr(tracker, "_connect", refuse)
    redis_client.client_kill_filter(_id=tracker.client_id)
    wait_for(lambda: (tracker.sync(), not tracker.alive)[1], 5, message="loss seen")
    assert len(tracker.cache) == 0  # cleared ...
    for _ in range(3):
        assert doc(get(PROFILE, warm))["id"] == warm.fan.pk  # ... still served, from Redis ...
    assert len(tracker.cache) == 0  # ... and not filled while nothing reports changes
    monkeypatch.setattr(tracker, "_connect", reconnect)
    wait_for(lambda: tracker.alive and tracker.epoch != old_epoch, 10, message="tracking back")
    # Data connections re-register with the new invalidation connection: still exact.
    get(PROFILE, warm)
    Subscription.objects.filter(profile=warm.fan).delete()
    services.rebuild_profiles([warm.fan.pk])
    assert doc(get(PROFILE, warm))["subscriptions"] == []


@pytest.mark.django_db(transaction=True)
def test_single_flight_builds_a_cold_entry_once(api_world, redis_client, monkeypatch):
    from api import single_flight

    # Waiters give up after WAIT_SECONDS and build themselves: on a loaded machine 8 threads
    # can take that long, so wait up to the lock's own lifetime here.
    monkeypatch.setattr(single_flight, "WAIT_SECONDS", single_flight.LOCK_TTL_MS / 1000)
    w = api_world
    threads, results = 8, []
    barrier = threading.Barrier(threads)

    def hit():
        from django.db import connection

        try:
            barrier.wait()
            response = Client().get(PROFILE, **w.auth(w.fan))
            results.append((response.status_code, orjson.loads(response.content)["id"]))
        finally:
            connection.close()

    workers = [threading.Thread(target=hit) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(30)
    assert results == [(200, w.fan.pk)] * threads
    assert redis_client.hget(keys.counters_key(), "rebuilds:profile") == b"1"


def test_a_cold_guide_builds_the_asked_day_of_the_asked_zone_only(api_world, redis_client):
    body = doc(get("/api/v1/me/epg", api_world))
    zone, day = body["timezone"], body["date"]
    asked = {keys.epg_fragment_key(zone, day, c["id"]).encode() for c in body["channels"]}
    # The pattern from core.keys: the builders refuse '*' as a zone or day (BadKeyPart).
    built = set(redis_client.scan_iter(match=keys.epg_fragment_pattern(), count=1000))
    assert asked and built == asked  # no other kept day, no other zone


@pytest.fixture
def api_on_throwaway_redis(throwaway_redis, settings, api_fresh):
    def point_at(url):
        settings.REDIS_URL = url
        redis_conn.reset()
        local_layer.reset()
        redis_reads.reset()

    point_at(throwaway_redis.url)
    yield throwaway_redis
    # The tracker first: its last tick flushes metrics through redis_conn.client(), which
    # would cache a client of the throwaway server again for every later test.
    local_layer.reset()
    redis_reads.reset()
    redis_conn.reset()


def test_redis_stopped_and_restarted_under_the_views(api_world, api_on_throwaway_redis):
    w, server = api_world, api_on_throwaway_redis
    services.rebuild_profiles([w.fan.pk])
    warm = get(PROFILE, w)
    assert warm.status_code == 200 and "X-Prewarm-Source" not in warm
    epg_warm = doc(get("/api/v1/me/epg", w))

    server.stop()
    degraded = get(PROFILE, w)
    assert degraded.status_code == 200 and degraded["X-Prewarm-Source"] == "postgres"
    assert doc(degraded)["channels"] == doc(warm)["channels"]
    epg = get("/api/v1/me/epg", w)
    assert epg.status_code == 200 and epg["X-Prewarm-Source"] == "postgres"
    assert doc(epg)["channels"] == epg_warm["channels"]
    assert get("/api/v1/me/playback/news", w).status_code == 200
    assert get("/api/v1/me/playback/local", w).status_code == 403
    assert get("/api/v1/me/playback/nosuch", w).status_code == 404
    ready = Client().get("/readyz")
    assert ready.status_code == 503
    checks = orjson.loads(ready.content)
    assert checks["checks"]["redis"].startswith("down") and checks["checks"]["postgres"] == "ok"
    assert "redis" in checks["error"]["message"]
    assert Client().get("/metrics").status_code == 200

    server.start()  # empty: everything is a miss again
    tracker = local_layer.get()
    wait_for(lambda: tracker.alive, 10, message="tracking reconnected")
    wait_for(lambda: redis_reads.down() is None, 5, message="breaker closed")
    back = get(PROFILE, w)
    assert back.status_code == 200 and "X-Prewarm-Source" not in back
    assert api_redis(server).exists(keys.profile_key(w.fan.pk))
    assert Client().get("/readyz").status_code == 200


def api_redis(server):
    import redis

    return redis.Redis.from_url(server.url)


@pytest.mark.django_db(transaction=True)
def test_postgres_down_warm_hits_still_served_misses_are_503(api_world, caplog):
    import socket

    from django.db import connection

    w = api_world
    services.rebuild_profiles([w.fan.pk])
    assert get(PROFILE, w).status_code == 200
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = dead_port
    try:
        assert get(PROFILE, w).status_code == 200  # no SQL on a warm hit
        cold = get(PROFILE, w, w.budget)
        assert cold.status_code == 503 and orjson.loads(cold.content)["error"]["code"] == "unavailable"
        # The viewer learns nothing of the servers (host, port, role); the log has it all.
        assert str(dead_port) not in cold.content.decode() and "127.0.0.1" not in cold.content.decode()
        assert cold["Retry-After"] == "1"
        assert any(str(dead_port) in r.getMessage() for r in caplog.records if r.name == "prewarm.api")
        ready = Client().get("/readyz")
        assert ready.status_code == 503
        assert orjson.loads(ready.content)["checks"]["postgres"].startswith("down")
        assert Client().get("/metrics").status_code == 200
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port


def test_a_data_connection_killed_under_the_process_leaves_no_stale_entry(warm, redis_client):
    """Issue #9 item 1: once its data connection is gone, Redis reports no change to what was
    read through it, while the invalidation connection stays up."""
    from core.models import Subscription

    assert doc(get(PROFILE, warm))["subscriptions"] == ["premium"]
    local = metrics.HITS["profile", "local"]
    get(PROFILE, warm)
    assert metrics.HITS["profile", "local"] == local + 1  # served from the local cache
    tracker = local_layer.get()
    epoch = tracker.epoch
    [data_id], _ = redis_reads.call([("CLIENT", "ID")], tracked=False)
    redis_client.client_kill_filter(_id=data_id)
    Subscription.objects.filter(profile=warm.fan).update(plan=warm.sports)
    services.rebuild_profiles([warm.fan.pk])
    fresh = get(PROFILE, warm)
    assert doc(fresh)["subscriptions"] == ["sports"]
    assert "X-Prewarm-Source" not in fresh  # from Redis on a new connection, not from Postgres
    assert tracker.alive and tracker.epoch == epoch
    # The new connection is tracked again: the next change is seen too.
    get(PROFILE, warm)
    Subscription.objects.filter(profile=warm.fan).update(plan=warm.premium)
    services.rebuild_profiles([warm.fan.pk])
    assert doc(get(PROFILE, warm))["subscriptions"] == ["premium"]


# -- what Redis tells the tracker, besides writes --------------------------------------


def cached_locally(warm_world_on, server):
    """Serve the fan's profile once so it is kept in process; return the tracker and a client."""
    services.rebuild_profiles([warm_world_on.fan.pk])
    doc(get(PROFILE, warm_world_on))
    tracker = local_layer.get()
    wait_for(lambda: tracker.alive, 10, message="tracking up")
    doc(get(PROFILE, warm_world_on))
    assert tracker.cache.get(warm_world_on.fan.pk) is not None
    return tracker, api_redis(server)


def dropped(tracker, pk):
    return wait_for(lambda: (tracker.sync(), tracker.cache.get(pk) is None)[1], 10, message="the local copy dropped")


def test_a_key_expiring_in_redis_drops_the_local_copy(api_world, api_on_throwaway_redis):
    w = api_world
    tracker, r = cached_locally(w, api_on_throwaway_redis)
    r.pexpire(keys.profile_key(w.fan.pk), 50)
    dropped(tracker, w.fan.pk)
    assert doc(get(PROFILE, w))["id"] == w.fan.pk  # rebuilt on the miss


def test_a_key_evicted_by_maxmemory_drops_the_local_copy(api_world, api_on_throwaway_redis):
    w = api_world
    key = keys.profile_key(w.fan.pk)
    tracker, r = cached_locally(w, api_on_throwaway_redis)
    r.expire(key, 3600)  # volatile-lru below may evict only keys with a TTL: this one
    dropped(tracker, w.fan.pk)  # (a TTL change is a change too)
    doc(get(PROFILE, w))
    assert tracker.cache.get(w.fan.pk) is not None and r.ttl(key) > 0
    r.config_set("maxmemory-policy", "volatile-lru")
    r.config_set("maxmemory", max(1, int(r.info("memory")["used_memory"]) - 1))
    try:
        import redis

        try:
            r.set("filler", b"x" * 100_000)  # needs memory: the volatile key goes
        except redis.ResponseError:
            pass  # OOM once nothing evictable is left: the eviction already happened
        wait_for(lambda: not r.exists(key), 5, message="the key evicted")
    finally:
        r.config_set("maxmemory", 0)
    assert r.info("stats")["evicted_keys"] >= 1
    dropped(tracker, w.fan.pk)


def test_flushdb_clears_the_local_cache(api_world, api_on_throwaway_redis):
    w = api_world
    tracker, r = cached_locally(w, api_on_throwaway_redis)
    r.flushdb()
    wait_for(lambda: (tracker.sync(), len(tracker.cache) == 0)[1], 10, message="local cache cleared")
    assert doc(get(PROFILE, w))["id"] == w.fan.pk


def test_a_silent_invalidation_connection_is_declared_dead_and_the_cache_cleared(api_world, api_on_throwaway_redis):
    from api import tracking

    w = api_world
    tracker, r = cached_locally(w, api_on_throwaway_redis)
    pause_ms = int((tracking.PING_EVERY + tracking.PING_TIMEOUT + 2) * 1000)
    # The server answers nobody, pings included, until the pause ends by itself (an UNPAUSE
    # would wait behind it too).
    r.execute_command("CLIENT", "PAUSE", pause_ms, "ALL")
    wait_for(lambda: not tracker.alive, pause_ms / 1000, interval=0.1, message="silence noticed")
    assert len(tracker.cache) == 0 and "silent" in (tracker.error or "")
    wait_for(lambda: tracker.alive, 20, message="tracking back after the pause")


def test_a_cold_read_queues_the_edges_of_what_it_builds(api_world, redis_client, purge_queues):
    """Never stale: the first read of a class builds it in the web process; a licence window
    closing a minute later is queued as a region edge, as a worker's rebuild would queue it."""
    from datetime import timedelta

    from core.models import Licence

    w = api_world
    edge = services.selectors.db_now() + timedelta(seconds=60)
    Licence.objects.create(channel=w.local, region=w.fan.region, valid_until=edge)
    doc(get(PROFILE, w))
    at = int(edge.timestamp()) + 1  # valid_until is kept in whole seconds
    assert redis_client.sismember(keys.edge_key("region", at), w.fan.region_id)


def test_a_cold_read_is_answered_while_the_broker_refuses_its_edges(api_world, redis_client, purge_queues, monkeypatch):
    """The broker down does not fail a read: the entry is built and served, and the edge it
    could not queue is left for beat's scan (not marked as queued)."""
    from datetime import timedelta

    from kombu.exceptions import OperationalError

    from core.models import Licence

    def refused(*args, **kwargs):
        raise OperationalError("broker down")

    patch_send_task(monkeypatch, refused)
    w = api_world
    edge = services.selectors.db_now() + timedelta(seconds=60)
    Licence.objects.create(channel=w.local, region=w.fan.region, valid_until=edge)
    assert doc(get(PROFILE, w))["region"] == w.fan.region.code
    at = int(edge.timestamp()) + 1
    assert not redis_client.sismember(keys.edge_key("region", at), w.fan.region_id)
