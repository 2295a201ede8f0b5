"""Rebuild services against real Postgres and Redis: contents, versions, tombstones, fan-out."""
from datetime import timedelta

import orjson
import pytest
from django.db import connection, transaction

from core import keys, selectors, services
from core.builders import build_profile, epoch_ms, profile_class
from core.models import Licence, Profile, Programme, Subscription

pytestmark = pytest.mark.django_db(transaction=True)


def profile_entry(redis_client, pk):
    return {k.decode(): v for k, v in redis_client.hgetall(keys.profile_key(pk)).items()}


def class_data(redis_client, class_id):
    return orjson.loads(redis_client.hget(keys.class_key(class_id), "data"))


def test_profile_entry_and_its_class(catalogue, redis_client):
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    Subscription.objects.create(profile=p, plan=catalogue["sports"], starts_at=catalogue["now"] - catalogue["hour"])
    services.rebuild_profiles([p.pk])
    entry = profile_entry(redis_client, p.pk)
    assert entry["region"] == b"EU-WEST" and entry["isp"] == b"fibra" and entry["tz"] == b"Europe/London"
    assert orjson.loads(entry["subscriptions"]) == ["sports"]
    assert int(entry["version"]) == Profile.objects.get(pk=p.pk).version
    data = class_data(redis_client, entry["class"].decode())
    assert data["allowed"] == ["news", "sport1"]
    assert data["denied"] == {"movies": "not_subscribed", "local": "geo_blocked"}
    assert redis_client.object("encoding", keys.profile_key(p.pk)) == b"listpack"


def test_out_of_order_rebuilds_keep_the_newer_entry(catalogue, redis_client):
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    now = catalogue["now"]
    stale_facts = selectors.profile_facts([p.pk])[p.pk]  # a slow rebuild reads here...
    Subscription.objects.create(profile=p, plan=catalogue["premium"], starts_at=now - catalogue["hour"])
    services.rebuild_profiles([p.pk], now=now)  # ...a fast one reads the newer rows and writes first
    fresh = profile_entry(redis_client, p.pk)
    late = build_profile(stale_facts, now + timedelta(seconds=5))  # later clock, older data
    later = epoch_ms(now + timedelta(seconds=5))
    assert services.store().write_many([(keys.profile_key(p.pk), late)], later) == [False]
    assert profile_entry(redis_client, p.pk) == fresh
    assert orjson.loads(fresh["subscriptions"]) == ["premium"]


def test_same_version_later_build_wins_for_time_driven_changes(catalogue, redis_client):
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    now = catalogue["now"]
    hour = catalogue["hour"]
    Subscription.objects.create(profile=p, plan=catalogue["premium"], starts_at=now - hour, expires_at=now + hour)
    services.rebuild_profiles([p.pk], now=now)
    assert orjson.loads(profile_entry(redis_client, p.pk)["subscriptions"]) == ["premium"]
    services.rebuild_profiles([p.pk], now=now + 2 * catalogue["hour"])  # no write, just time
    assert orjson.loads(profile_entry(redis_client, p.pk)["subscriptions"]) == []
    # and an older clock cannot bring the expired plan back
    services.rebuild_profiles([p.pk], now=now)
    assert orjson.loads(profile_entry(redis_client, p.pk)["subscriptions"]) == []


def test_deleted_profile_leaves_a_tombstone_a_late_rebuild_cannot_resurrect(catalogue, redis_client):
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    pk = p.pk
    services.rebuild_profiles([pk])
    old_facts = selectors.profile_facts([pk])[pk]
    p.delete()
    services.rebuild_profiles([pk])
    assert profile_entry(redis_client, pk).get("deleted") == b"1"
    assert 0 < redis_client.ttl(keys.profile_key(pk)) <= 24 * 3600
    # A rebuild that read the row before it went, landing late, even built "later".
    late = build_profile(old_facts, catalogue["now"])
    assert services.store().write_many([(keys.profile_key(pk), late)], epoch_ms(catalogue["now"]) + 10**9) == [False]
    assert profile_entry(redis_client, pk).get("deleted") == b"1"


def reinsert(pk, region, isp):
    with connection.cursor() as cur:
        cur.execute("INSERT INTO core_profile (id, region_id, isp_id) VALUES (%s, %s, %s)", [pk, region.pk, isp.pk])


def test_a_row_inserted_again_with_a_deleted_id_is_served_at_once(catalogue, redis_client):
    """Never stale, 7: the tombstone refused every write for 24 h (404 for a day)."""
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    pk = p.pk
    services.rebuild_profiles([pk])
    p.delete()
    services.rebuild_profiles([pk])
    assert profile_entry(redis_client, pk).get("deleted") == b"1"
    reinsert(pk, catalogue["us"], catalogue["cheap"])
    assert services.rebuild_profiles([pk]).written == 1
    entry = profile_entry(redis_client, pk)
    assert "deleted" not in entry and entry["region"] == b"US-EAST"
    assert redis_client.ttl(keys.profile_key(pk)) == -1  # no longer expires like a tombstone
    # A tombstone for the old row arriving late does not hide the new one.
    services.store().tombstone_many([(keys.profile_key(pk), selectors.deleted_versions("profile", [pk])[pk])], 0)
    assert "deleted" not in profile_entry(redis_client, pk)


def test_delete_and_insert_in_one_transaction_moves_the_version_on(catalogue, redis_client):
    """Never stale, 7: the new row's version restarted at 1, and the old, higher one won."""
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    pk = p.pk
    for _ in range(3):  # a row edited a few times has a version above a new row's first
        Profile.objects.filter(pk=pk).update(isp=catalogue["fibra"])
    services.rebuild_profiles([pk])
    old_version = Profile.objects.get(pk=pk).version
    with transaction.atomic():
        Profile.objects.filter(pk=pk).delete()
        reinsert(pk, catalogue["us"], catalogue["cheap"])
    assert Profile.objects.get(pk=pk).version > old_version
    services.rebuild_profiles([pk])
    assert profile_entry(redis_client, pk)["region"] == b"US-EAST"


def test_a_renamed_region_moves_its_profiles_versions_so_no_clock_decides(catalogue, redis_client):
    """Never stale, 6: a region code change emitted profile events without moving a version,
    so a rebuild with the old code built on a host with a fast clock won the tie."""
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    services.rebuild_profiles([p.pk])
    before = selectors.profile_facts([p.pk])[p.pk]
    with connection.cursor() as cur:
        cur.execute("UPDATE core_region SET code = 'EU-NORTH' WHERE id = %s", [catalogue["eu"].pk])
    after = selectors.profile_facts([p.pk])[p.pk]
    assert after.version > before.version and after.region == "EU-NORTH"
    services.rebuild_profiles([p.pk])
    fast_clock = epoch_ms(catalogue["now"]) + 3600 * 1000 * 24
    stale = build_profile(before, catalogue["now"])
    assert services.store().write_many([(keys.profile_key(p.pk), stale)], fast_clock) == [False]
    assert profile_entry(redis_client, p.pk)["region"] == b"EU-NORTH"


@pytest.mark.parametrize(
    ("sql", "field", "expected"),
    [
        ("UPDATE core_isp SET code = 'fibra2' WHERE code = 'fibra'", "isp", b"fibra2"),
        ("UPDATE core_region SET timezone = 'Europe/Paris' WHERE code = 'EU-WEST'", "tz", b"Europe/Paris"),
        ("UPDATE core_plan SET code = 'sport' WHERE code = 'sports'", "subscriptions", b'["sport"]'),
    ],
)
def test_every_name_a_profile_embeds_moves_its_version(catalogue, redis_client, sql, field, expected):
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    Subscription.objects.create(profile=p, plan=catalogue["sports"], starts_at=catalogue["now"] - catalogue["hour"])
    services.rebuild_profiles([p.pk])
    version = Profile.objects.get(pk=p.pk).version
    with connection.cursor() as cur:
        cur.execute(sql)
    assert Profile.objects.get(pk=p.pk).version > version
    services.rebuild_profiles([p.pk])
    assert profile_entry(redis_client, p.pk)[field] == expected


def test_rebuilds_take_postgres_clock_not_their_hosts(catalogue, redis_client, monkeypatch):
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    monkeypatch.setattr(services, "utcnow", lambda: catalogue["now"] + timedelta(days=365))  # a host far ahead
    with connection.cursor() as cur:
        cur.execute("SELECT (extract(epoch FROM now()) * 1000)::bigint")
        db_ms = cur.fetchone()[0]
    services.rebuild_profiles([p.pk])
    assert abs(int(profile_entry(redis_client, p.pk)["built_at"]) - db_ms) < 60_000


def test_a_new_region_with_an_old_code_rebuilds_the_class_entries_it_finds(catalogue, redis_client):
    """A class entry left by a deleted region with the same code existed, so the profile
    rebuild kept it: the old region's channels."""
    from core.models import Region

    old = Region.objects.create(code="ZZ", name="Old", timezone="UTC")
    Licence.objects.create(channel=catalogue["news"], region=old)
    p = Profile.objects.create(region=old, isp=catalogue["fibra"])
    services.rebuild_profiles([p.pk])
    class_id = profile_entry(redis_client, p.pk)["class"].decode()
    assert class_data(redis_client, class_id)["allowed"] == ["news"]
    p.delete()
    old.delete()
    new = Region.objects.create(code="ZZ", name="New", timezone="UTC")  # no licences: nothing allowed
    q = Profile.objects.create(region=new, isp=catalogue["fibra"])
    services.rebuild_profiles([q.pk])
    assert profile_entry(redis_client, q.pk)["class"].decode() == class_id
    assert class_data(redis_client, class_id)["allowed"] == []


def test_licence_change_costs_work_per_class_not_per_viewer(catalogue, redis_client):
    """100k viewers in a handful of classes: removing a licence rebuilds the classes only."""
    eu, fibra, cheap = catalogue["eu"].pk, catalogue["fibra"].pk, catalogue["cheap"].pk
    with connection.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")  # seed without 100k events
        cur.execute(
            "INSERT INTO core_profile (region_id, isp_id, version)"
            " SELECT %s, CASE WHEN g %% 2 = 0 THEN %s ELSE %s END, 1 FROM generate_series(1, 100000) g",
            [eu, fibra, cheap],
        )
        cur.execute(
            "INSERT INTO core_subscription (profile_id, plan_id, starts_at)"
            " SELECT id, %s, now() - interval '1 day' FROM core_profile WHERE id %% 3 = 0",
            [catalogue["sports"].pk],
        )
        cur.execute("ANALYZE core_profile, core_subscription")  # as seed_demo does after a bulk load
    ids = list(Profile.objects.values_list("id", flat=True))
    for i in range(0, len(ids), 5000):
        services.rebuild_profiles(ids[i : i + 5000])
    members = redis_client.smembers(keys.region_classes_key("EU-WEST"))
    assert len(members) == 4  # {fibra, cheapnet} x {no plan, sports}

    from core.models import OutboxEvent

    OutboxEvent.objects.all().delete()
    Licence.objects.filter(channel=catalogue["sport1"], region=catalogue["eu"]).delete()
    kinds = set(OutboxEvent.objects.values_list("kind", flat=True))
    assert kinds == {"region"}  # no per-viewer event at all
    before = int(redis_client.hget(keys.counters_key(), "rebuilds:profile"))
    outcome = services.rebuild_regions([eu])
    assert outcome.written == 4
    assert int(redis_client.hget(keys.counters_key(), "rebuilds:profile")) == before
    sample = Profile.objects.filter(isp_id=fibra, subscriptions__plan=catalogue["sports"]).first()
    cls_id = redis_client.hget(keys.profile_key(sample.pk), "class").decode()
    assert class_data(redis_client, cls_id)["denied"]["sport1"] == "geo_blocked"


def test_epg_fragments_per_timezone_and_day(catalogue, redis_client):
    now = catalogue["now"]
    Programme.objects.create(
        channel=catalogue["news"], starts_at=now, ends_at=now + catalogue["hour"], title="Nachrichten Über"
    )
    services.rebuild_epg([catalogue["news"].pk], now=now)
    days = services.epg_days("Europe/London", now)
    assert len(days) == 4
    today = now.astimezone(__import__("zoneinfo").ZoneInfo("Europe/London")).date().isoformat()
    frag = redis_client.hget(keys.epg_fragment_key("Europe/London", today, catalogue["news"].pk), "data")
    assert [p["title"] for p in orjson.loads(frag)["programmes"]] == ["Nachrichten Über"]
    assert redis_client.exists(keys.epg_fragment_key("America/New_York", days[1].isoformat(), catalogue["news"].pk))


def test_class_of_profile_matches_builder(catalogue, redis_client):
    p = Profile.objects.create(region=catalogue["us"], isp=catalogue["cable"])
    services.rebuild_profiles([p.pk])
    facts = selectors.profile_facts([p.pk])[p.pk]
    cls = profile_class(facts, catalogue["now"])
    assert class_data(redis_client, cls.id)["allowed"] == ["news", "local"]


def test_licence_change_after_the_class_set_was_evicted_still_rebuilds_classes(catalogue, redis_client):
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    Subscription.objects.create(profile=p, plan=catalogue["sports"], starts_at=catalogue["now"] - catalogue["hour"])
    services.rebuild_profiles([p.pk])
    cls_id = redis_client.hget(keys.profile_key(p.pk), "class").decode()
    assert class_data(redis_client, cls_id)["allowed"] == ["news", "sport1"]
    redis_client.delete(keys.region_classes_key("EU-WEST"))  # what allkeys-lru may do
    Licence.objects.filter(channel=catalogue["sport1"], region=catalogue["eu"]).delete()
    assert services.rebuild_regions([catalogue["eu"].pk]).written == 1
    assert class_data(redis_client, cls_id)["denied"]["sport1"] == "geo_blocked"
    members = redis_client.smembers(keys.region_classes_key("EU-WEST"))
    assert services.COMPLETE_MEMBER in members and len(members) == 2  # remembered, as complete


def test_a_class_set_restarted_by_one_profile_after_eviction_still_rebuilds_every_class(catalogue, redis_client):
    """Eviction drops the set; the next profile rebuild starts a new one holding its own class
    only. A region-wide change must still reach the other classes (issue: never stale, 2)."""
    c = catalogue
    fan = Profile.objects.create(region=c["eu"], isp=c["fibra"])
    Subscription.objects.create(profile=fan, plan=c["sports"], starts_at=c["now"] - c["hour"])
    other = Profile.objects.create(region=c["eu"], isp=c["cable"])
    Subscription.objects.create(profile=other, plan=c["sports"], starts_at=c["now"] - c["hour"])
    services.rebuild_profiles([fan.pk, other.pk])
    services.rebuild_regions([c["eu"].pk])  # the set is complete now
    classes = {pk: redis_client.hget(keys.profile_key(pk), "class").decode() for pk in (fan.pk, other.pk)}
    redis_client.delete(keys.region_classes_key("EU-WEST"))  # what allkeys-lru may do
    services.rebuild_profiles([fan.pk])  # restarts the set with the fan's class alone
    assert redis_client.scard(keys.region_classes_key("EU-WEST")) == 1
    Licence.objects.filter(channel=c["sport1"], region=c["eu"]).delete()
    assert services.rebuild_regions([c["eu"].pk]).written == 2
    for cls_id in classes.values():
        assert class_data(redis_client, cls_id)["denied"]["sport1"] == "geo_blocked"


def test_an_isp_renamed_and_back_leaves_no_class_entry_stale(catalogue, redis_client):
    """Found by the model-based test: while `fibra` was called `fibra2`, a licence change
    rebuilt the (now unused) fibra class with licences that named fibra2, at the region's
    version; renamed back, the profile rebuild found that version current and kept it."""
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    Subscription.objects.create(profile=p, plan=catalogue["sports"], starts_at=catalogue["now"] - catalogue["hour"])
    services.rebuild_profiles([p.pk])
    class_id = profile_entry(redis_client, p.pk)["class"].decode()
    before = class_data(redis_client, class_id)
    assert "sport1" in before["allowed"]  # the licence allows fibra by name
    services.rebuild_regions([catalogue["eu"].pk])  # the region's class set, complete, names the fibra class

    def rename(old, new):
        with connection.cursor() as cur:
            cur.execute("UPDATE core_isp SET code = %s WHERE code = %s", [new, old])
        services.rebuild_profiles([p.pk])

    rename("fibra", "fibra2")
    Licence.objects.filter(channel=catalogue["news"], region=catalogue["eu"]).update(valid_from=None)  # any edit
    services.rebuild_regions([catalogue["eu"].pk])
    rename("fibra2", "fibra")
    assert profile_entry(redis_client, p.pk)["class"].decode() == class_id
    assert class_data(redis_client, class_id) == before


def test_metrics_of_a_deferred_block_land_together_at_its_end_even_when_it_raises(redis_client):
    from core import metrics

    before = metrics.STORE.counter_fields().get(metrics.REBUILDS.field(("profile",)), 0)

    def work_then_fail():
        with metrics.STORE.deferred():
            metrics.STORE.add([(metrics.REBUILDS, ("profile",), 2)])
            metrics.STORE.observe(metrics.PIPELINE_HOPS, 0.003, count=3, values=("queue",))
            assert metrics.STORE.counter_fields().get(metrics.REBUILDS.field(("profile",)), 0) == before  # held
            raise RuntimeError("the block failed after its work")

    with pytest.raises(RuntimeError):
        work_then_fail()
    assert metrics.STORE.counter_fields()[metrics.REBUILDS.field(("profile",))] == before + 2
    # one stored sample stands for the three entries it was observed for
    assert metrics.STORE.recent_samples(metrics.PIPELINE_HOPS, ("queue",))[:3] == [pytest.approx(0.003)] * 3


def test_batches_overlapped_give_what_one_rebuild_at_a_time_gives(catalogue, redis_client):
    """A warm-up's batches (each read while Redis writes the last) write the same entries,
    count the same outcomes and tombstone the same deleted ids as rebuild_profiles."""
    ps = Profile.objects.bulk_create([Profile(region=catalogue["eu"], isp=catalogue["fibra"]) for _ in range(7)])
    ids = [p.pk for p in ps]
    gone = ps[3].pk
    services.rebuild_profiles(ids)
    Profile.objects.filter(pk=gone).delete()
    redis_client.delete(keys.profile_key(ids[0]))
    outcomes = list(services.rebuild_profile_batches([ids[:3], ids[3:5], ids[5:]]))
    assert [(o.written, o.deleted) for o in outcomes] == [(3, 0), (1, 1), (2, 0)]
    assert profile_entry(redis_client, ids[0])["region"] == b"EU-WEST"
    assert profile_entry(redis_client, gone)["deleted"] == b"1"


def test_a_span_batch_reads_the_profiles_it_holds_as_an_id_list_would(catalogue, redis_client):
    """A warm-up of every profile reads `range` spans (a range scan, no id list): the same
    entries and subscriptions as the ids' own rebuild, and nothing for ids without a row."""
    ps = Profile.objects.bulk_create([Profile(region=catalogue["eu"], isp=catalogue["fibra"]) for _ in range(5)])
    ids = [p.pk for p in ps]
    Subscription.objects.create(profile=ps[1], plan=catalogue["sports"], starts_at=catalogue["now"] - catalogue["hour"])
    Profile.objects.filter(pk=ids[2]).delete()
    listed = {i: selectors.profile_facts([i]).get(i) for i in ids}
    _now, spanned = selectors.profile_facts_between(ids[0], ids[-1] + 1)
    assert spanned == {i: f for i, f in listed.items() if f is not None}
    redis_client.flushdb()
    outcomes = list(services.rebuild_profile_batches([range(ids[0], ids[2] + 1), range(ids[3], ids[-1] + 1)]))
    assert [(o.written, o.deleted) for o in outcomes] == [(2, 0), (2, 0)]
    assert orjson.loads(profile_entry(redis_client, ids[1])["subscriptions"]) == ["sports"]
    assert not redis_client.exists(keys.profile_key(ids[2]))  # no row, no tombstone from a span


def test_batches_stopped_by_an_error_leave_no_connection_taken(catalogue, redis_client, monkeypatch):
    """A batch whose rows cannot be read ends the run; the batch already sent gives its Redis
    connection back (dropped: its replies were never read)."""
    from core.redis_conn import client

    ps = Profile.objects.bulk_create([Profile(region=catalogue["eu"], isp=catalogue["fibra"]) for _ in range(4)])
    pool = client().connection_pool
    real = selectors.profile_facts_now
    calls = []

    def second_read_fails(ids):
        calls.append(ids)
        if len(calls) == 2:
            raise RuntimeError("Postgres went away")
        return real(ids)

    monkeypatch.setattr(selectors, "profile_facts_now", second_read_fails)
    in_use = len(pool._in_use_connections)
    with pytest.raises(RuntimeError):
        list(services.rebuild_profile_batches([[ps[0].pk, ps[1].pk], [ps[2].pk, ps[3].pk]]))
    assert len(pool._in_use_connections) == in_use
