"""manage.py cache_verify against real Postgres and Redis: each kind of drift found, repaired, and
what is not drift (a change in flight, an entry just past its valid_until, a tombstone)."""
import io
import logging
from datetime import timedelta

import orjson
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import Client

from core import keys, metrics, redis_conn, selectors, services, verify
from core.builders import Entry, epoch_ms
from core.models import Profile, Subscription
from schedules import tasks
from tests.rows import bulk_profiles, quiet_isp_change

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def grace_waits(monkeypatch, settings):
    """The re-check runs at once (the grace itself is still applied to valid_until)."""
    settings.PREWARM_VERIFY_GRACE_SECONDS = 0.2
    waits = []
    monkeypatch.setattr(verify, "_sleep", waits.append)
    return waits


def verify_cmd(*args) -> tuple[int, dict]:
    """Run `cache_verify --json ARGS` in this process: (exit code, the JSON object)."""
    out = io.StringIO()
    try:
        call_command("cache_verify", "--json", *args, stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, orjson.loads(out.getvalue())


def kinds(report: dict) -> dict:
    """{(family, kind): count} of what was found, zeros left out."""
    return {
        (family, kind): got[kind]
        for family, got in report["families"].items()
        for kind in ("missing", "stale", "orphan")
        if got[kind]
    }


def examples(report, family, kind):
    return report["families"][family]["examples"][kind]


def today(tz="Europe/London"):
    return services.epg_days(tz, selectors.db_now())[1].isoformat()


def test_a_warm_cache_verifies_clean(warm_world):
    code, report = verify_cmd()
    assert code == 0 and report["clean"] is True and kinds(report) == {}
    fams = report["families"]
    assert fams["profile"]["checked"] == 3 and fams["class"]["checked"] == 3
    assert fams["epg"]["checked"] == 4 * 2 * 4  # channels x time zones in use x kept days
    out = io.StringIO()
    call_command("cache_verify", stdout=out)  # the table
    assert out.getvalue().splitlines()[-1] == "clean"
    assert "profile" in out.getvalue() and "missing" in out.getvalue()


def test_a_corrupted_profile_field_is_stale_and_logged(warm_world, redis_client, caplog):
    key = keys.profile_key(warm_world.fan.pk)
    redis_client.hset(key, "isp", "cheapnet")
    with caplog.at_level(logging.WARNING, logger="prewarm.verify"):
        code, report = verify_cmd()
    assert code == 1 and kinds(report) == {("profile", "stale"): 1}
    assert examples(report, "profile", "stale") == [{"key": key, "fields": ["isp"], "why": "differs from Postgres"}]
    assert any(key in r.getMessage() and "isp" in r.getMessage() for r in caplog.records)


def test_an_evicted_profile_is_missing_not_stale(warm_world, redis_client):
    redis_client.delete(keys.profile_key(warm_world.budget.pk))
    code, report = verify_cmd()
    assert code == 1 and kinds(report) == {("profile", "missing"): 1}
    assert examples(report, "profile", "missing")[0]["key"] == keys.profile_key(warm_world.budget.pk)


def test_a_live_entry_for_a_deleted_row_is_stale(warm_world):
    pk = warm_world.free.pk  # no subscriptions: the quiet delete leaves no dangling rows
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")  # no trigger, no tombstone
        cur.execute("DELETE FROM core_profile WHERE id = %s", [pk])
    code, report = verify_cmd("--family", "profile")
    assert code == 1 and kinds(report) == {("profile", "stale"): 1}
    assert examples(report, "profile", "stale")[0]["why"] == "live entry where the row is gone"


def test_a_live_entry_above_the_highest_id_is_found_by_the_scan(warm_world):
    """What a restore of an older dump leaves: entries for ids Postgres never had since."""
    ghost = Profile.objects.order_by("-pk")[0].pk + 1000
    entry = Entry(1, {"region": b"EU-WEST", "isp": b"fibra", "tz": b"Europe/London", "subscriptions": b"[]",
                      "class": b"x", "valid_until": b""})
    services.store().write_many([(keys.profile_key(ghost), entry)], epoch_ms(selectors.db_now()))
    code, report = verify_cmd("--family", "profile")
    assert code == 1 and examples(report, "profile", "stale")[0]["key"] == keys.profile_key(ghost)
    assert report["families"]["profile"]["checked"] == 4


def test_a_class_entry_with_a_wrong_channel_set_is_stale(warm_world, redis_client):
    class_id = redis_client.hget(keys.profile_key(warm_world.fan.pk), "class").decode()
    key = keys.class_key(class_id)
    data = orjson.loads(redis_client.hget(key, "data"))
    data["allowed"] = [*data["allowed"], "local"]
    redis_client.hset(key, "data", orjson.dumps(data))
    code, report = verify_cmd()
    assert code == 1 and kinds(report) == {("class", "stale"): 1}
    assert examples(report, "class", "stale")[0] == {"key": key, "fields": ["data"], "why": "differs from Postgres"}


def test_a_class_no_viewer_is_in_is_an_orphan(warm_world):
    from core.entitlement import EntitlementClass

    nobody = EntitlementClass("US-EAST", "cable", frozenset({"sports"}))  # US-EAST has no viewer
    now = selectors.db_now()
    entry = services.class_entries(selectors.region_by_code("US-EAST"), [nobody], now)[nobody.id]
    services.store().write_many([(keys.class_key(nobody.id), entry)], epoch_ms(now))
    code, report = verify_cmd("--family", "class")
    assert code == 1 and kinds(report) == {("class", "orphan"): 1}
    assert examples(report, "class", "orphan")[0]["key"] == keys.class_key(nobody.id)


def test_a_fragment_for_a_time_zone_no_region_uses_is_an_orphan_but_its_tombstone_is_not(warm_world):
    unused = keys.epg_fragment_key("Asia/Tokyo", today("Asia/Tokyo"), warm_world.news.pk)
    old_day = keys.epg_fragment_key("Europe/London", "2020-01-01", warm_world.news.pk)
    built = epoch_ms(selectors.db_now())
    services.store().write_many([(unused, Entry(1, {"data": b"{}"})), (old_day, Entry(1, {"data": b"{}"}))], built)
    services.store().tombstone_many([(keys.epg_fragment_key("Asia/Tokyo", "2020-01-02", warm_world.news.pk), 0)], built)
    code, report = verify_cmd("--family", "epg")
    assert code == 1 and kinds(report) == {("epg", "orphan"): 2}
    whys = {e["key"]: e["why"] for e in examples(report, "epg", "orphan")}
    assert whys == {unused: "a time zone no region uses", old_day: "a day outside the kept window"}


def test_non_entry_keys_are_ignored(warm_world, redis_client):
    redis_client.set(keys.flight_key(keys.profile_key(warm_world.fan.pk)), "1", ex=10)
    redis_client.set(keys.flight_key(keys.class_key("0123456789abcdef")), "1", ex=10)  # no class of ours
    redis_client.hset(keys.dirty_key("profile"), "1", "q1")
    code, report = verify_cmd()
    assert code == 0, report


def test_repair_fixes_every_kind_and_a_second_run_is_clean(warm_world, redis_client):
    w = warm_world
    redis_client.hset(keys.profile_key(w.fan.pk), "subscriptions", "[]")
    redis_client.delete(keys.profile_key(w.budget.pk))
    class_id = redis_client.hget(keys.profile_key(w.fan.pk), "class")
    redis_client.hset(keys.class_key(class_id.decode()), "data", b'{"allowed": []}')
    redis_client.set(keys.profile_key(w.free.pk), "not a hash")
    orphan = keys.epg_fragment_key("Asia/Tokyo", today("Asia/Tokyo"), w.news.pk)
    services.store().write_many([(orphan, Entry(1, {"data": b"{}"}))], epoch_ms(selectors.db_now()))
    redis_client.delete(keys.epg_fragment_key("Europe/London", today(), w.movies.pk))

    code, report = verify_cmd("--repair")
    assert code == 1
    assert kinds(report) == {("profile", "stale"): 2, ("profile", "missing"): 1, ("class", "stale"): 1,
                             ("epg", "orphan"): 1, ("epg", "missing"): 1}
    assert report["families"]["profile"]["repaired"] == {"missing": 1, "stale": 2, "orphan": 0}
    assert report["families"]["epg"]["repaired"] == {"missing": 1, "stale": 0, "orphan": 1}
    assert all(f["refused"] == 0 for f in report["families"].values())
    assert not redis_client.exists(orphan)

    code, report = verify_cmd()
    assert code == 0 and report["clean"], report


def test_a_change_committed_but_not_yet_rebuilt_is_not_reported(warm_world, grace_waits, monkeypatch):
    """The first pass sees the difference; the worker's rebuild lands during the grace period."""
    w = warm_world
    quiet_isp_change(w.fan.pk, w.cheap.pk)
    landed = []

    def worker_lands(seconds):
        landed.append(seconds)
        services.rebuild_profiles([w.fan.pk])

    monkeypatch.setattr(verify, "_sleep", worker_lands)
    code, report = verify_cmd("--family", "profile")
    assert code == 0 and report["clean"], report
    assert landed and 0 < landed[0] <= 0.2  # it did wait for the grace


def test_a_change_that_never_reaches_redis_is_reported_after_the_grace(warm_world, grace_waits):
    quiet_isp_change(warm_world.fan.pk, warm_world.cheap.pk)
    code, report = verify_cmd("--family", "profile")
    assert code == 1 and examples(report, "profile", "stale")[0]["fields"] == ["class", "isp"]
    assert grace_waits  # the re-check came after the wait


def test_an_entry_past_its_valid_until_is_drift_only_after_the_grace(catalogue, redis_client, settings):
    c = catalogue
    now = selectors.db_now()
    p = Profile.objects.create(region=c["eu"], isp=c["fibra"])
    Subscription.objects.create(profile=p, plan=c["sports"], starts_at=now - c["hour"],
                                expires_at=now - timedelta(seconds=10))
    # Built before the subscription ended: its valid_until (the end) passed 10 s ago and no
    # time-driven rebuild has landed yet.
    services.rebuild_profiles([p.pk], now=now - timedelta(seconds=20))
    settings.PREWARM_VERIFY_GRACE_SECONDS = 60
    code, report = verify_cmd("--family", "profile")
    assert code == 0, report
    settings.PREWARM_VERIFY_GRACE_SECONDS = 5
    code, report = verify_cmd("--family", "profile")
    assert code == 1 and set(examples(report, "profile", "stale")[0]["fields"]) >= {"subscriptions", "valid_until"}


def test_two_processes_find_the_same_drift(catalogue, redis_client, monkeypatch):
    ids = bulk_profiles(catalogue, 50, plan="sports")
    for i in range(0, len(ids), 20):
        services.rebuild_profiles(ids[i : i + 20])
    monkeypatch.setattr(verify, "BATCH", 7)
    redis_client.hset(keys.profile_key(ids[33]), "region", "US-EAST")
    redis_client.delete(keys.profile_key(ids[3]))
    code, report = verify_cmd("--all", "--jobs", "2", "--family", "profile,class")
    assert code == 1 and kinds(report) == {("profile", "stale"): 1, ("profile", "missing"): 1}
    assert report["families"]["profile"]["checked"] == 50
    assert report["families"]["class"]["checked"] == 1


def test_sample_checks_that_many_profiles_and_their_classes(warm_world, redis_client):
    redis_client.hset(keys.profile_key(warm_world.budget.pk), "tz", "UTC")
    code, report = verify_cmd("--sample", "10")
    assert code == 1 and kinds(report) == {("profile", "stale"): 1}
    fams = report["families"]
    assert fams["profile"]["checked"] == 3 and fams["class"]["checked"] == 3
    assert fams["class"]["orphans_checked"] is False and fams["epg"]["checked"] <= 10
    out = io.StringIO()
    call_command("cache_verify", "--sample", "2", "--family", "class", stdout=out)
    row = out.getvalue().splitlines()[2].split()
    assert row[0] == "class" and row[-1] == "-"  # orphans need every class: not in a sample


def test_family_filter_and_bad_arguments(warm_world, redis_client):
    redis_client.hset(keys.profile_key(warm_world.fan.pk), "isp", "x")
    code, report = verify_cmd("--family", "class", "--family", "epg")
    assert code == 0 and set(report["families"]) == {"class", "epg"}
    for args in (["--family", "profiles"], ["--sample", "0"], ["--all", "--sample", "3"]):
        with pytest.raises(CommandError):
            call_command("cache_verify", *args)


def test_an_unreachable_redis_is_exit_2_with_one_line(warm_world, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    redis_conn.reset()
    try:
        with pytest.raises(CommandError) as exc:
            call_command("cache_verify")
    finally:
        redis_conn.reset()
    assert exc.value.returncode == 2
    assert str(exc.value).startswith("Redis unreachable:") and "\n" not in str(exc.value)


def test_the_rolling_slices_cover_every_id_repair_and_record_metrics(catalogue, redis_client, settings):
    ids = bulk_profiles(catalogue, 40)
    services.rebuild_profiles(ids)
    settings.PREWARM_VERIFY_CYCLE_HOURS = 4 * 300 / 3600  # four slices a cycle
    assert tasks.verify_slices() == 4
    redis_client.hset(keys.profile_key(ids[25]), "isp", "cheapnet")
    redis_client.delete(keys.profile_key(ids[-1]))
    slices = []
    while not slices or not slices[-1]["cycle_done"]:
        slices.append(tasks.verify_slice())
        assert len(slices) <= 4
    covered = [pid for s in slices for pid in range(*s["slice"])]
    assert covered[: len(ids)] == ids and len(set(covered)) == len(covered)  # every id once, in order
    assert sum(s["drift"]["profile"]["stale"] for s in slices) == 1
    assert sum(s["drift"]["profile"]["missing"] for s in slices) == 1
    gauge = metrics.STORE.gauge_fields()["verify_last_cycle_timestamp_seconds"]
    assert gauge > 0
    assert redis_client.hget(keys.profile_key(ids[25]), "isp") == b"fibra"  # repaired
    assert redis_client.exists(keys.profile_key(ids[-1]))
    assert tasks.verify_slice()["slice"][0] == ids[0]  # the next cycle starts again at the lowest id
    counters = metrics.STORE.counter_fields()
    assert counters["verify_drift:profile:stale"] == 1 and counters["verify_drift:profile:missing"] == 1

    text = Client().get("/metrics").content.decode()
    assert 'prewarm_verify_drift_total{family="profile",kind="stale"} 1.0' in text
    assert "prewarm_verify_last_cycle_timestamp_seconds " in text
