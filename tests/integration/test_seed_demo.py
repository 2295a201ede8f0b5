"""`manage.py seed_demo` against real Postgres: counts, determinism, idempotence, reset, triggers, bad input."""
import os
import re
import subprocess
import sys
import zoneinfo
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from core import demo_data
from core.models import Channel, Isp, Licence, Plan, Profile, Programme, Region, Subscription

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 6, 1, 20, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SMALL = dict(profiles=200, channels=20, days=1, now=NOW.isoformat())
TABLES = [
    "core_region", "core_isp", "core_plan", "core_channel", "core_channel_plans", "core_licence",
    "core_licence_isps", "core_profile", "core_subscription", "core_programme",
]


def seed(**options):
    out = StringIO()
    call_command("seed_demo", stdout=out, stderr=StringIO(), **{**SMALL, **options})
    return out.getvalue()


def checksum():
    parts = []
    with connection.cursor() as cursor:
        for table in TABLES:
            # Versions are numbered by one sequence across seeds: bookkeeping, not demo data.
            cursor.execute(
                "SELECT count(*), md5(coalesce(string_agg((to_jsonb(t) - 'version' - 'epg_version')::text, '|'"
                f" ORDER BY t.id), '')) FROM {table} t"
            )
            parts.append(cursor.fetchone())
    return parts


def sql(query, params=()):
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def test_seeds_every_table_and_reports_the_rate():
    out = seed()
    assert (Region.objects.count(), Isp.objects.count(), Plan.objects.count()) == (6, 12, 6)
    assert Channel.objects.count() == 20 and Licence.objects.count() > 20
    assert list(Profile.objects.order_by("id").values_list("id", flat=True)) == list(range(1, 201))
    assert 200 < Subscription.objects.count() < 400
    assert Programme.objects.values("channel").distinct().count() == 20
    assert re.search(r"seeded [\d,]+ rows in [\d.]+ s \([\d,]+ rows/s\)", out)
    assert "profiles: 200/200" in out and "manage.py warm --all" in out
    # Sequences continue after the explicit ids.
    for table in ("core_profile", "core_subscription", "core_programme", "core_licence", "core_channel"):
        query = f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) = (SELECT max(id) + 1 FROM {table})"
        assert sql(query) == [(True,)], table


def test_same_seed_same_data_and_another_seed_differs():
    seed()
    first = checksum()
    seed(reset=True)
    assert checksum() == first
    seed(reset=True, seed=7)
    assert checksum() != first


def test_rerun_says_so_and_duplicates_nothing():
    seed()
    before = checksum()
    out = seed(profiles=500)
    assert out.strip() == "already seeded: 200 profiles; use --reset to re-create"
    assert checksum() == before


def test_reset_truncates_and_reseeds():
    seed()
    seed(reset=True, profiles=50, channels=5)
    assert list(Profile.objects.order_by("id").values_list("id", flat=True)) == list(range(1, 51))
    assert Channel.objects.count() == 5 and Region.objects.count() == 6
    assert sql("SELECT min(id) FROM core_subscription")[0][0] == 1


def test_regions_have_valid_distinct_timezones():
    seed()
    zones = list(Region.objects.values_list("timezone", flat=True))
    for zone in zones:
        zoneinfo.ZoneInfo(zone)
    assert len(set(zones)) == 6 and "Asia/Tokyo" in zones and "America/Sao_Paulo" in zones


def test_licences_geoblock_and_restrict_isps():
    seed()
    licensed = set(Licence.objects.values_list("channel_id", "region_id"))
    assert len(licensed) < 20 * 6  # not every channel everywhere
    allow = Licence.objects.filter(isp_mode="allow")
    deny = Licence.objects.filter(isp_mode="deny")
    assert allow.exists() and deny.exists()
    assert all(lic.isps.exists() for lic in [*allow, *deny])
    assert not Licence.objects.filter(isp_mode="any", isps__isnull=False).exists()
    assert Licence.objects.exclude(valid_from=None, valid_until=None).exists()
    free = Channel.objects.filter(plans=None).count()
    assert 0 < free < 20


def test_guide_is_back_to_back_and_non_ascii():
    seed()
    start, end = demo_data.guide_window(NOW, 1)
    for channel in Channel.objects.all():
        programmes = list(channel.programmes.order_by("starts_at"))
        assert programmes[0].starts_at <= start and programmes[-1].ends_at >= end
        assert all(a.ends_at == b.starts_at for a, b in zip(programmes, programmes[1:]))
    text = "".join(Programme.objects.values_list("title", flat=True)) + "".join(
        Programme.objects.values_list("synopsis", flat=True)
    )
    assert not text.isascii() and re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text)
    assert any(c in text for c in "éüÑ")
    assert not Programme.objects.filter(genre="").exists() and not Programme.objects.filter(age_rating="").exists()


def test_subscriptions_are_distinct_and_some_expire_soon():
    seed()
    subs = Subscription.objects
    assert subs.values("profile", "plan").distinct().count() == subs.count()
    assert subs.filter(expires_at__gt=NOW, expires_at__lte=NOW + DAY).exists()
    assert subs.filter(starts_at__gt=NOW).exists() and subs.filter(expires_at__lte=NOW).exists()
    assert subs.filter(expires_at=None).exists()
    assert Profile.objects.filter(subscriptions=None).exists()
    isp_regions = {i.id: i.regions for i in demo_data.ISPS}
    codes = dict(Region.objects.values_list("id", "code"))
    assert all(codes[r] in isp_regions[i] for r, i in Profile.objects.values_list("region_id", "isp_id"))


def test_user_triggers_are_skipped_and_indexes_restored():
    indexes = sql("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'core_subscription' ORDER BY 1")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE seed_test_hits (n int);"
            " CREATE FUNCTION seed_test_hit() RETURNS trigger AS $$"
            " BEGIN INSERT INTO seed_test_hits VALUES (1); RETURN NULL; END $$ LANGUAGE plpgsql;"
            " CREATE TRIGGER seed_test_hit AFTER INSERT ON core_subscription"
            " FOR EACH STATEMENT EXECUTE FUNCTION seed_test_hit();"
        )
    try:
        out = seed()
        assert sql("SELECT count(*) FROM seed_test_hits") == [(0,)]
        assert "trigger(s) were skipped: run `manage.py warm --all`" in out
        assert sql("SHOW session_replication_role") == [("origin",)]
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER seed_test_hit ON core_subscription;"
                " DROP FUNCTION seed_test_hit(); DROP TABLE seed_test_hits"
            )
    assert sql("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'core_subscription' ORDER BY 1") == indexes


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(profiles=-1), "--profiles must be 0 or more"),
        (dict(channels=0), "--channels must be at least 1"),
        (dict(days=-2), "--days must be between"),
        (dict(now="yesterday"), "--now must be an ISO-8601"),
    ],
)
def test_bad_input_is_a_command_error(options, message):
    with pytest.raises(CommandError, match=message):
        seed(**options)
    assert not Region.objects.exists()


def test_bad_input_exits_non_zero_with_one_line():
    env = {**os.environ, "PREWARM_DEV": "1"}
    argv = [sys.executable, "manage.py", "seed_demo", "--profiles", "-5"]
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip() == "CommandError: --profiles must be 0 or more, got -5"


def test_reset_drops_the_old_data_sets_entries_so_the_warm_up_can_write(redis_client):
    """Never stale, 7: ids restart at 1 after --reset; the old entries' versions and tombstones
    would refuse every write of the next warm-up."""
    from core import keys, services

    seed()
    services.rebuild_profiles([1, 2])
    services.store().tombstone_many([(keys.profile_key(2), 10**9)], 10**15)  # the old profile 2 was deleted
    redis_client.hset(keys.profile_key(1), "version", 10**9)  # the old profile 1 was edited a lot
    out = seed(reset=True, seed=7)
    assert "entries of the old data set dropped" in out
    call_command("warm", "--all", "--inline", "--jobs", "1", stdout=StringIO())
    for pk in (1, 2):
        entry = redis_client.hgetall(keys.profile_key(pk))
        assert b"deleted" not in entry
        assert entry[b"region"].decode() == Profile.objects.get(pk=pk).region.code
        assert int(entry[b"version"]) == Profile.objects.get(pk=pk).version
