"""The cache on a real 3-master Redis Cluster (tests/redis_cluster.py): the workers' writes go
to every node in per-slot batches, scripts touch one slot, the verifier and capacity scan
every node, and the viewer API reads each entry from its node with an exact local layer."""
import io

import orjson
import pytest
from django.core.management import call_command
from django.db import connection

from core import keys, redis_conn, services, verify
from core.builders import Entry
from core.models import OutboxEvent, Profile
from tests.rows import bulk_profiles
from tests.sends import patch_send_task
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
    names = [keys.class_key(f"c{i}") for i in range(10)]
    assert all(store.write_many(((k, Entry(3, {"data": b"new"})) for k in names), 2000))
    assert not any(store.write_many(((k, Entry(3, {"data": b"old"})) for k in names), 1999))
