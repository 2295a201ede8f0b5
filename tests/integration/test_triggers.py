"""Every kind of write to a cache-feeding table leaves an outbox row in its own transaction."""
import psycopg
import pytest
from django.db import connection, transaction

from core.models import OutboxEvent, Profile, Programme, Subscription

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
