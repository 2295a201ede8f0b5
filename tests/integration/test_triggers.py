"""Every kind of write to a cache-feeding table leaves an outbox row in its own transaction."""
import psycopg
import pytest
from django.db import connection, transaction

from core.models import Channel, DeletedRow, OutboxEvent, Profile, Programme, Region, Subscription

pytestmark = pytest.mark.django_db(transaction=True)


def outbox():
    return [(e.kind, sorted(e.ids)) for e in OutboxEvent.objects.order_by("id")]


def clear_outbox():
    OutboxEvent.objects.all().delete()


def raw_conn():
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params, autocommit=True)


def test_orm_save_update_bulk_create_delete(catalogue):
    clear_outbox()
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    assert outbox() == [("profile", [p.pk])]
    clear_outbox()
    subs = Subscription.objects.bulk_create(
        [Subscription(profile=p, plan=catalogue[c], starts_at=catalogue["now"]) for c in ("basic", "sports")]
    )
    assert outbox() == [("profile", [p.pk])]  # one statement, one event
    clear_outbox()
    Subscription.objects.filter(pk=subs[0].pk).update(expires_at=catalogue["now"] + catalogue["hour"])
    assert outbox() == [("profile", [p.pk])]
    clear_outbox()
    Subscription.objects.filter(pk=subs[1].pk).delete()
    assert outbox() == [("profile", [p.pk])]
    clear_outbox()
    pk = p.pk
    p.delete()
    assert ("profile", [pk]) in outbox()


def test_subscription_change_bumps_profile_version(catalogue):
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    v0 = Profile.objects.get(pk=p.pk).version
    Subscription.objects.create(profile=p, plan=catalogue["basic"], starts_at=catalogue["now"])
    v1 = Profile.objects.get(pk=p.pk).version
    Subscription.objects.filter(profile=p).update(expires_at=catalogue["now"] + catalogue["hour"])
    v2 = Profile.objects.get(pk=p.pk).version
    assert v0 < v1 < v2


def test_queryset_update_of_many_rows_is_one_event(catalogue):
    profiles = Profile.objects.bulk_create(
        [Profile(region=catalogue["eu"], isp=catalogue["fibra"]) for _ in range(2000)]
    )
    Subscription.objects.bulk_create(
        [Subscription(profile=p, plan=catalogue["basic"], starts_at=catalogue["now"]) for p in profiles]
    )
    clear_outbox()
    Subscription.objects.update(expires_at=catalogue["now"] + catalogue["hour"])
    rows = outbox()
    assert len(rows) == 1 and rows[0][0] == "profile" and len(rows[0][1]) == 2000


def test_raw_sql_from_another_connection(catalogue):
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    clear_outbox()
    with raw_conn() as conn:
        conn.execute("UPDATE core_profile SET isp_id = %s WHERE id = %s", [catalogue["cheap"].pk, p.pk])
        conn.execute(
            "INSERT INTO core_programme (channel_id, starts_at, ends_at, title, synopsis, genre, age_rating)"
            " VALUES (%s, now(), now() + interval '1 hour', 'Raw', '', '', '')",
            [catalogue["news"].pk],
        )
    assert outbox() == [("profile", [p.pk]), ("channel", [catalogue["news"].pk])]


def test_licence_and_package_changes_touch_regions_not_profiles(catalogue):
    Profile.objects.bulk_create([Profile(region=catalogue["eu"], isp=catalogue["fibra"]) for _ in range(50)])
    clear_outbox()
    catalogue["sport1"].licences.filter(region=catalogue["eu"]).delete()
    # The ORM deletes the licence's ISP links first: two statements, the same event.
    assert {(k, tuple(ids)) for k, ids in outbox()} == {("region", (catalogue["eu"].pk,))}
    clear_outbox()
    catalogue["movies"].plans.add(catalogue["sports"])
    assert outbox() == [("region", sorted([catalogue["eu"].pk, catalogue["us"].pk]))]
    clear_outbox()
    lic = catalogue["movies"].licences.get()
    lic.isps.add(catalogue["fibra"])
    assert outbox() == [("region", [catalogue["eu"].pk])]


def test_programme_change_is_a_channel_event(catalogue):
    prog = Programme.objects.create(
        channel=catalogue["news"], starts_at=catalogue["now"], ends_at=catalogue["now"] + catalogue["hour"], title="A"
    )
    clear_outbox()
    Programme.objects.filter(pk=prog.pk).update(title="B")
    assert outbox() == [("channel", [catalogue["news"].pk])]


def test_rollback_leaves_no_outbox_row(catalogue):
    clear_outbox()
    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012  the block is the transaction
        Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
        raise RuntimeError("abort")
    assert outbox() == []


def events():
    """{kind: ids} over the outbox, merged."""
    merged: dict[str, set[int]] = {}
    for kind, ids in outbox():
        merged.setdefault(kind, set()).update(ids)
    return merged


def run(sql, params=()):
    with raw_conn() as conn:
        conn.execute(sql, params)


def all_regions(catalogue):
    return {catalogue["eu"].pk, catalogue["us"].pk}


def test_updates_of_join_tables_reach_the_regions(catalogue):
    """Never stale, 8: moving a channel to another plan by SQL changed nothing in the cache."""
    catalogue["movies"].plans.add(catalogue["premium"])
    lic = catalogue["movies"].licences.get()
    lic.isps.add(catalogue["fibra"])
    clear_outbox()
    run("UPDATE core_channel_plans SET plan_id = %s WHERE channel_id = %s", [catalogue["sports"].pk,
                                                                           catalogue["movies"].pk])
    assert events() == {"region": all_regions(catalogue)}
    clear_outbox()
    run("UPDATE core_licence_isps SET isp_id = %s WHERE licence_id = %s AND isp_id = %s",
        [catalogue["cable"].pk, lic.pk, catalogue["fibra"].pk])
    assert events() == {"region": {lic.region_id}}


def test_truncate_of_every_feeding_table_emits(catalogue):
    """Never stale, 8: TRUNCATE fired no trigger."""
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    Subscription.objects.create(profile=p, plan=catalogue["basic"], starts_at=catalogue["now"])
    Programme.objects.create(
        channel=catalogue["news"], starts_at=catalogue["now"], ends_at=catalogue["now"] + catalogue["hour"], title="A"
    )
    channel_ids = set(Channel.objects.values_list("id", flat=True))
    for table, expected in [
        ("core_subscription", {"profile": {p.pk}}),
        ("core_programme", {"channel": {catalogue["news"].pk}}),
        ("core_licence_isps", {"region": all_regions(catalogue)}),
        ("core_channel_plans", {"region": all_regions(catalogue)}),
        ("core_licence CASCADE", {"region": all_regions(catalogue)}),
        ("core_profile CASCADE", {"profile": {p.pk}}),
        ("core_channel CASCADE", {"channel": channel_ids, "region": all_regions(catalogue)}),
    ]:
        clear_outbox()
        run(f"TRUNCATE {table}")
        assert events() == expected, table
    deleted = dict(DeletedRow.objects.filter(kind="profile").values_list("row_id", "version"))
    assert set(deleted) == {p.pk} and deleted[p.pk] >= 1
    assert set(DeletedRow.objects.filter(kind="channel").values_list("row_id", flat=True)) == channel_ids


def test_deletes_record_the_last_version_for_the_tombstone(catalogue):
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    Profile.objects.filter(pk=p.pk).update(isp=catalogue["cheap"])
    pk, last = p.pk, Profile.objects.get(pk=p.pk).version
    p.delete()
    assert DeletedRow.objects.get(kind="profile", row_id=pk).version == last
    news = Channel.objects.get(pk=catalogue["news"].pk)
    news_pk, epg_version = news.pk, news.epg_version
    news.delete()
    assert DeletedRow.objects.get(kind="channel", row_id=news_pk).version == epg_version


def test_versions_come_from_one_sequence_even_for_explicit_values(catalogue):
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    first = Profile.objects.get(pk=p.pk).version
    assert p.version == first  # the ORM got the database's value back
    run("UPDATE core_profile SET version = 1 WHERE id = %s", [p.pk])
    assert Profile.objects.get(pk=p.pk).version > first
    run("INSERT INTO core_profile (region_id, isp_id, version) VALUES (%s, %s, 1)",
        [catalogue["eu"].pk, catalogue["fibra"].pk])
    assert Profile.objects.order_by("-id").first().version > first


def test_a_time_zone_coming_into_use_rebuilds_every_channels_fragments(catalogue):
    """Never stale, 9: fragments are rebuilt only for zones in use, and a region INSERT
    emitted nothing: a zone that comes (back) into use was served old fragments."""
    channel_ids = set(Channel.objects.values_list("id", flat=True))
    clear_outbox()
    tokyo = Region.objects.create(code="JP", name="Japan", timezone="Asia/Tokyo")
    assert events() == {"region": {tokyo.pk}, "channel": channel_ids}
    clear_outbox()
    Region.objects.create(code="JP2", name="Japan 2", timezone="Asia/Tokyo")  # a zone already in use
    assert set(events()) == {"region"}
    clear_outbox()
    run("UPDATE core_region SET timezone = 'Europe/London' WHERE code IN ('JP', 'JP2')")  # in use by EU-WEST
    assert events().get("channel") is None
    clear_outbox()
    run("UPDATE core_region SET timezone = 'Asia/Tokyo' WHERE code = 'JP'")  # back into use
    assert events()["channel"] == channel_ids
    clear_outbox()
    region_id = Region.objects.get(code="JP2").pk
    run("DELETE FROM core_region WHERE id = %s", [region_id])
    assert events() == {"region": {region_id}}


def test_a_renamed_isp_moves_every_regions_version(catalogue):
    """Licences name ISPs by code: every class's meaning changes with the name."""
    before = dict(Region.objects.values_list("id", "version"))
    run("UPDATE core_isp SET code = 'fibra2' WHERE code = 'fibra'")
    after = dict(Region.objects.values_list("id", "version"))
    assert all(after[r] > before[r] for r in before)
    clear_outbox()
    run("UPDATE core_isp SET name = 'Fibra!' WHERE code = 'fibra2'")  # a name no entry holds
    assert outbox() == []
