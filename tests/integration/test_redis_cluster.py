"""The cache on a real 3-master Redis Cluster (tests/redis_cluster.py): the workers' writes go
to every node in per-slot batches, scripts touch one slot, the verifier and capacity scan
every node, and the viewer API reads each entry from its node with an exact local layer."""
import io

import orjson
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from api import cluster, local_layer, metrics
from core import keys, redis_conn, services, verify
from core.builders import Entry
from core.models import OutboxEvent, Profile
from tests.rows import bulk_profiles
from tests.sends import patch_send_task
from tests.waiting import wait_for
from workers import coalesce, events, relay, tasks

pytestmark = pytest.mark.django_db(transaction=True)


def nodes_holding(cluster_client, entry_keys) -> set:
    return {cluster_client.get_node_from_key(k).name for k in entry_keys}


def test_the_cache_client_is_a_cluster_client(on_cluster):
    r = redis_conn.client()
    assert redis_conn.is_cluster(r)
    assert len(r.get_primaries()) == 3


def test_a_profile_batch_over_every_node_is_written_in_per_slot_batches(on_cluster, catalogue):
    ids = bulk_profiles(catalogue, 300, plan="premium")
    outcome = services.rebuild_profiles(ids)
    assert outcome.counts() == {"written": 300, "refused": 0, "deleted": 0}
    r = redis_conn.client()
    profile_keys = [keys.profile_key(i) for i in ids]
    assert nodes_holding(r, profile_keys) == {n.name for n in r.get_primaries()}
    assert all(r.hget(k, "version") for k in profile_keys)
    # The class the profiles share and its region's set were written on the way.
    cls = r.hget(profile_keys[0], "class").decode()
    assert r.hget(keys.class_key(cls), "version") is not None


def test_each_answer_of_a_batch_spanning_slots_is_its_own_entrys(on_cluster):
    """Grouped by slot on the way out, the answers come back in the caller's order."""
    store = services.store()
    names = [keys.profile_key(i) for i in range(1, 41)]
    store.write_many(((k, Entry(10, {"v": b"x"})) for k in names[::2]), 1)
    # Every other entry holds version 10: a version 5 is refused there and written elsewhere.
    results = store.write_many(((k, Entry(5, {"v": b"y"})) for k in names), 2)
    assert results == [i % 2 == 1 for i in range(40)]


def test_tombstones_and_deleted_rows_on_a_cluster(on_cluster, catalogue):
    ids = bulk_profiles(catalogue, 20)
    services.rebuild_profiles(ids)
    Profile.objects.filter(pk__in=ids[:10]).delete()
    outcome = services.rebuild_profiles(ids)
    assert outcome.deleted == 10
    r = redis_conn.client()
    assert all(r.hget(keys.profile_key(i), "deleted") == b"1" for i in ids[:10])


def test_an_invalidation_batch_spanning_slots_goes_from_the_relay_through_the_workers_code(
    on_cluster, catalogue, monkeypatch
):
    """One UPDATE of many profiles: one outbox row, claimed in the coalescing hash (a script on
    one slot), published, rebuilt by the task's code; every entry on every node moves."""
    ids = bulk_profiles(catalogue, 200)
    services.rebuild_profiles(ids)
    r = redis_conn.client()
    before = {i: int(r.hget(keys.profile_key(i), "version")) for i in ids}
    OutboxEvent.objects.all().delete()
    with connection.cursor() as cur:
        cur.execute("UPDATE core_profile SET isp_id = %s WHERE id = ANY(%s)", [catalogue["cable"].pk, ids])
    sent = []
    patch_send_task(monkeypatch, lambda name, args, kwargs, **options: sent.append((name, args, kwargs)))
    with relay.connect() as conn:
        assert relay.drain(conn) == 1
    assert sent and all(name == events.REBUILD_TASK for name, _, _ in sent)
    assert sorted(i for _, args, _ in sent for i in args[1]) == sorted(ids)
    queued = r.hgetall(keys.dirty_key(events.PROFILE))
    assert {int(k) for k, v in queued.items() if v.startswith(b"q")} == set(ids)
    for _name, args, kwargs in sent:
        tasks.rebuild.run(*args, **kwargs)
    after = {i: int(r.hget(keys.profile_key(i), "version")) for i in ids}
    assert all(after[i] > before[i] for i in ids)
    assert all(r.hget(keys.profile_key(i), "isp") == b"cable" for i in ids)
    assert r.hlen(keys.dirty_key(events.PROFILE)) == 0  # every run released its markers


def test_regions_and_guides_rebuild_on_a_cluster(on_cluster, catalogue):
    ids = bulk_profiles(catalogue, 30, plan="premium")
    services.rebuild_profiles(ids)
    assert services.rebuild_regions().written >= 1
    channels = [catalogue[c].pk for c in ("news", "sport1", "movies", "local")]
    outcome = services.rebuild_epg(channels)
    assert outcome.written > 0 and outcome.refused == 0


def verify_all() -> tuple[int, dict]:
    out = io.StringIO()
    try:
        call_command("cache_verify", "--all", "--json", stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, orjson.loads(out.getvalue())


def test_verify_scans_every_node_finds_no_drift_and_repairs_what_drifted(on_cluster, catalogue, monkeypatch):
    monkeypatch.setattr(verify, "_sleep", lambda seconds: None)
    ids = bulk_profiles(catalogue, 120, plan="premium")
    services.rebuild_profiles(ids)
    services.rebuild_epg([catalogue[c].pk for c in ("news", "sport1", "movies", "local")])
    code, report = verify_all()
    assert code == 0, report
    assert report["families"]["profile"]["checked"] == 120
    r = redis_conn.client()
    gone = [keys.profile_key(i) for i in ids[:30]]  # on every node
    assert len(nodes_holding(r, gone)) == 3
    r.unlink(*gone)
    r.hset(keys.profile_key(ids[40]), "isp", "wrong")
    code, report = verify_all()
    assert code != 0
    assert report["families"]["profile"]["missing"] == 30
    assert report["families"]["profile"]["stale"] == 1
    assert not verify.run(repair=True).clean
    code, report = verify_all()
    assert code == 0, report


def test_unlink_prefix_and_capacity_on_a_cluster(on_cluster, catalogue):
    ids = bulk_profiles(catalogue, 50, plan="premium")
    services.rebuild_profiles(ids)
    out = io.StringIO()
    call_command("cache_capacity", "--profiles", "1000", "--json", stdout=out)
    doc = orjson.loads(out.getvalue())
    assert doc["families"]["profile"]["bytes_per_entry"] > 0
    assert redis_conn.unlink_prefix(keys.prefix()) >= 50
    r = redis_conn.client()
    assert not list(r.scan_iter(match=f"{keys.prefix()}:*"))


def test_the_coalescing_keys_share_one_slot(on_cluster):
    r = redis_conn.client()
    slots = {r.keyslot(k) for k in (keys.dirty_key("profile"), keys.dirty_key("region"), keys.inflight_key(),
                                     keys.bell_key())}
    assert len(slots) == 1
    assert coalesce.claim("profile", [1, 2, 3], "sa") == [1, 2, 3]
    coalesce.queued("profile", [1, 2, 3], "sa")
    run = coalesce.start("profile", [1, 2, 3], ticket="sa")
    coalesce.done("profile", [1, 2, 3], run)
    assert r.hlen(keys.dirty_key("profile")) == 0


def test_a_built_at_from_postgres_orders_same_version_writes_per_slot(on_cluster):
    store = services.store()
    names = [keys.class_key(f"{i:016x}") for i in range(10)]
    assert all(store.write_many(((k, Entry(3, {"data": b"new"})) for k in names), 2000))
    assert not any(store.write_many(((k, Entry(3, {"data": b"old"})) for k in names), 1999))


# -- the viewer API ----------------------------------------------------------------------------

PROFILE = "/api/v1/me/profile"


def api_get(path, world, profile):
    return Client().get(path, **world.auth(profile))


def doc(response):
    assert response.status_code == 200, response.content
    return orjson.loads(response.content)


def test_viewer_reads_go_to_each_keys_node_and_the_local_layer_stays_exact_across_nodes(on_cluster, warm_world):
    from core.models import Licence, Programme, Subscription

    w = warm_world
    viewers = (w.fan, w.budget, w.free)
    for viewer in viewers:
        doc(api_get(PROFILE, w, viewer))
        doc(api_get("/api/v1/me/epg", w, viewer))
    tracker = local_layer.get()
    assert isinstance(tracker, cluster.ClusterTracker)
    wait_for(lambda: len(tracker.nodes) == 3 and tracker.alive, 10, message="a tracker on every node")
    r = redis_conn.client()
    read = [keys.profile_key(v.pk) for v in viewers]
    read += [keys.class_key(r.hget(k, "class").decode()) for k in read]
    assert len(nodes_holding(r, read)) >= 2  # one viewer's entries live on several nodes

    before = metrics.HITS["profile", "local"]
    for viewer in viewers:
        doc(api_get(PROFILE, w, viewer))
    assert metrics.HITS["profile", "local"] - before == 3  # served in-process ...
    for i in range(4):  # ... and each change, on whichever node, reaches the next request
        plan = w.sports if i % 2 == 0 else w.premium
        Subscription.objects.filter(profile__in=[w.fan, w.budget]).update(plan=plan)
        services.rebuild_profiles([w.fan.pk, w.budget.pk])
        for viewer in (w.fan, w.budget):
            assert doc(api_get(PROFILE, w, viewer))["subscriptions"] == [plan.code]

    assert api_get("/api/v1/me/playback/sport1", w, w.fan).status_code == 200
    Licence.objects.filter(channel=w.sport1, region=w.eu).delete()
    services.rebuild_regions([w.eu.pk])  # the class entries' nodes
    denied = api_get("/api/v1/me/playback/sport1", w, w.fan)
    assert denied.status_code == 403 and orjson.loads(denied.content)["error"]["code"] == "geo_blocked"

    assert b"news show 0" in api_get("/api/v1/me/epg", w, w.fan).content
    Programme.objects.filter(channel=w.news, title="news show 0").update(title="Breaking: renamed")
    services.rebuild_epg([w.news.pk])  # the guide's node
    body = api_get("/api/v1/me/epg", w, w.fan).content
    assert b"Breaking: renamed" in body and b"news show 0" not in body


def test_losing_one_nodes_invalidation_connection_clears_the_layer_until_it_is_back(
    on_cluster, warm_world, monkeypatch
):
    from api.connection import RedisDown
    from core.models import Subscription

    w = warm_world
    doc(api_get(PROFILE, w, w.fan))
    tracker = local_layer.get()
    wait_for(lambda: len(tracker.nodes) == 3 and tracker.alive, 10, message="a tracker on every node")
    doc(api_get(PROFILE, w, w.fan))
    assert len(tracker.cache) > 0
    r = redis_conn.client()
    node = r.get_node_from_key(keys.profile_key(w.fan.pk))
    sub = tracker.nodes[cluster.node_url(on_cluster.url.replace("+cluster", ""), node.host, node.port)]
    reconnect = sub._connect

    def refuse():
        raise RedisDown("test: invalidations unreachable")

    monkeypatch.setattr(sub, "_connect", refuse)
    r.get_redis_connection(node).client_kill_filter(_id=sub.client_id)
    wait_for(lambda: (tracker.sync(), not sub.alive)[1], 5, message="loss seen")
    assert len(tracker.cache) == 0 and not tracker.alive
    for _ in range(3):
        assert doc(api_get(PROFILE, w, w.fan))["id"] == w.fan.pk  # served from its node ...
    assert len(tracker.cache) == 0  # ... never stored while that node reports nothing
    monkeypatch.setattr(sub, "_connect", reconnect)
    wait_for(lambda: tracker.alive, 10, message="tracking back")
    doc(api_get(PROFILE, w, w.fan))
    Subscription.objects.filter(profile=w.fan).delete()
    services.rebuild_profiles([w.fan.pk])
    assert doc(api_get(PROFILE, w, w.fan))["subscriptions"] == []


def test_time_edges_queue_and_come_due_on_a_cluster(on_cluster, monkeypatch):
    """An edge's id set, its expiry and the pending index go in one pipeline over several slots."""
    from datetime import UTC, datetime, timedelta

    from workers import edges

    sent = []
    patch_send_task(monkeypatch, lambda name, args, kwargs, **options: sent.append(args))
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)
    assert edges.queue(events.PROFILE, moment, [1, 2, 3]) == 1
    assert edges.queue(events.PROFILE, moment, [2, 3, 4]) == 1  # only 4 is new
    assert [args[1] for args in sent] == [[1, 2, 3], [4]]
    assert edges.due(moment.timestamp()) == [(events.PROFILE, int(moment.timestamp()), [1, 2, 3, 4])]
    edges.started(events.PROFILE, moment.timestamp(), [1, 2, 3, 4])
    assert edges.due(moment.timestamp()) == []
