"""The whole pipeline with real processes: Postgres triggers -> relay -> broker -> worker -> Redis.
Faults are real too: a killed relay, a killed worker, a broker that goes away."""
import sys
import time

import orjson
import pytest

from core import keys, metrics
from core.models import Licence, OutboxEvent, Profile, Programme, Subscription
from tests.processes import celery_argv
from tests.rows import bulk_profiles
from tests.waiting import wait_for
from workers import relay
from workers.app import app

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]


def field(client, pk, name):
    return client.hget(keys.profile_key(pk), name)


def subs(client, pk):
    raw = field(client, pk, "subscriptions")
    return None if raw is None else orjson.loads(raw)


def class_data(client, pk):
    cls = field(client, pk, "class")
    raw = cls and client.hget(keys.class_key(cls.decode()), "data")
    return orjson.loads(raw) if raw else None


def raw_sql(*statements):
    with relay.connect() as conn:
        for sql, params in statements:
            conn.execute(sql, params)


def all_subs(client, ids):
    pipe = client.pipeline(transaction=False)
    for pk in ids:
        pipe.hget(keys.profile_key(pk), "subscriptions")
    return pipe.execute()


def test_every_kind_of_change_reaches_redis(catalogue, redis_client, purge_queues, start_proc):
    start_proc("worker")
    start_proc("relay")
    c, now, hour = redis_client, catalogue["now"], catalogue["hour"]

    # created through the ORM: the signal path builds it
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    wait_for(lambda: field(c, p.pk, "region") == b"EU-WEST", message="new profile cached")

    # region change through the ORM, ISP change through raw SQL from another connection
    p.region = catalogue["us"]
    p.save()
    wait_for(lambda: field(c, p.pk, "region") == b"US-EAST", message="region change")
    raw_sql(("UPDATE core_profile SET isp_id = %s WHERE id = %s", [catalogue["cable"].pk, p.pk]))
    wait_for(lambda: field(c, p.pk, "isp") == b"cable", message="raw SQL ISP change")

    # subscriptions: add, expire (QuerySet.update), delete
    s = Subscription.objects.create(profile=p, plan=catalogue["premium"], starts_at=now - hour)
    wait_for(lambda: subs(c, p.pk) == ["premium"], message="subscription added")
    Subscription.objects.filter(pk=s.pk).update(expires_at=now - hour / 2)
    wait_for(lambda: subs(c, p.pk) == [], message="subscription expired")
    Subscription.objects.create(profile=p, plan=catalogue["sports"], starts_at=now - hour)
    wait_for(lambda: subs(c, p.pk) == ["sports"], message="second subscription")
    Subscription.objects.filter(profile=p).delete()
    wait_for(lambda: subs(c, p.pk) == [], message="subscriptions deleted")

    # licence removal geoblocks a channel for the whole class
    q = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    wait_for(lambda: class_data(c, q.pk) and "news" in class_data(c, q.pk)["allowed"], message="class built")
    Licence.objects.filter(channel=catalogue["news"], region=catalogue["eu"]).delete()
    wait_for(lambda: class_data(c, q.pk)["denied"].get("news") == "geo_blocked", message="licence removal")

    # programme title change rewrites the channel's fragments
    prog = Programme.objects.create(channel=catalogue["news"], starts_at=now, ends_at=now + hour, title="Old title")
    import zoneinfo

    day = now.astimezone(zoneinfo.ZoneInfo("Europe/London")).date().isoformat()
    fkey = keys.epg_fragment_key("Europe/London", day, catalogue["news"].pk)
    wait_for(lambda: b"Old title" in (c.hget(fkey, "data") or b""), message="programme fragment")
    Programme.objects.filter(pk=prog.pk).update(title="New títle")
    wait_for(lambda: "New títle".encode() in (c.hget(fkey, "data") or b""), message="programme title change")

    # deleting the profile leaves a tombstone
    pk = q.pk
    q.delete()
    wait_for(lambda: field(c, pk, "deleted") == b"1", message="tombstone")

    count = metrics.snapshot(metrics.INVALIDATION_LAG).count
    assert count > 0
    # Every hop was stamped (the raw SQL change above came through the relay alone), and each
    # one is no longer than the whole path.
    names = ("notify", "relay", "queue", "read", "write")
    hops = {hop: metrics.snapshot(metrics.PIPELINE_HOPS, (hop,)) for hop in names}
    assert all(h.count > 0 for h in hops.values()), {hop: h.count for hop, h in hops.items()}
    lag = metrics.snapshot(metrics.INVALIDATION_LAG)
    assert all(h.sum <= lag.sum for h in hops.values())


def test_queryset_update_of_10k_subscriptions_converges(catalogue, redis_client, purge_queues, start_proc):
    ids = bulk_profiles(catalogue, 10_000, plan="premium")
    from core import services

    for i in range(0, len(ids), 2000):
        services.rebuild_profiles(ids[i : i + 2000])
    assert set(all_subs(redis_client, ids)) == {b'["premium"]'}
    start_proc("worker")
    start_proc("relay")
    Subscription.objects.filter(profile_id__in=ids).update(expires_at=catalogue["now"] - catalogue["hour"])
    wait_for(lambda: set(all_subs(redis_client, ids)) == {b"[]"}, timeout=60, interval=0.2, message="10k converged")


def test_broker_down_then_up_loses_nothing(catalogue, redis_client, start_proc, throwaway_redis):
    ids = bulk_profiles(catalogue, 200)
    broker = throwaway_redis.url
    worker = start_proc("worker", CELERY_BROKER_URL=broker)
    start_proc("relay", CELERY_BROKER_URL=broker)
    # Let the catch-up settle first: kombu's Redis transport can crash a worker that loses
    # the broker while acknowledging (a supervisor restarts it); here the broker goes while idle.
    import redis

    queue = redis.Redis.from_url(broker)
    wait_for(lambda: OutboxEvent.objects.count() == 0, message="catch-up relayed")
    wait_for(lambda: queue.llen("invalidate") == 0 and queue.hlen("unacked") == 0, message="the worker idle")
    queue.close()
    throwaway_redis.stop()
    # Raw SQL only: the test process's own signal path publishes to the main broker.
    for pk in ids:
        raw_sql(("UPDATE core_profile SET isp_id = %s WHERE id = %s", [catalogue["cheap"].pk, pk]))
    time.sleep(1.0)
    assert OutboxEvent.objects.count() >= 1  # the outbox waits
    throwaway_redis.start()
    wait_for(lambda: OutboxEvent.objects.count() == 0, timeout=30, message="outbox drained after broker restart")
    assert worker.popen.poll() is None, worker.output()[-3000:]
    wait_for(
        lambda: all(field(redis_client, pk, "isp") == b"cheapnet" for pk in ids), timeout=30, message="all converged"
    )


def test_relay_killed_mid_batch_loses_nothing(catalogue, redis_client, purge_queues, start_proc):
    ids = bulk_profiles(catalogue, 400)
    start_proc("worker")
    first = start_proc("relay", PREWARM_LOG_LEVEL="DEBUG")  # a line per batch it relays
    half = len(ids) // 2
    with relay.connect() as conn:
        for pk in ids[:half]:
            conn.execute("UPDATE core_profile SET isp_id = %s WHERE id = %s", [catalogue["cable"].pk, pk])
        first.wait_for_output("relayed ")  # it is relaying ...
        with conn.transaction():  # ... the rest lands at once ...
            for pk in ids[half:]:
                conn.execute("UPDATE core_profile SET isp_id = %s WHERE id = %s", [catalogue["cable"].pk, pk])
        first.kill()  # ... and it dies while they wait or are in flight
    left = OutboxEvent.objects.count()
    assert left > 0  # rows it had not relayed (or relayed without deleting) when it died
    second = start_proc("relay2", [sys.executable, "manage.py", "relay", "--poll", "0.2"])
    wait_for(lambda: OutboxEvent.objects.count() == 0, timeout=30, message="outbox drained by the second relay")
    assert "caught up: 0 outbox rows" not in second.output()  # the second relay did that work
    wait_for(lambda: all(field(redis_client, pk, "isp") == b"cable" for pk in ids), timeout=30, message="converged")


def test_worker_killed_mid_task_loses_nothing(catalogue, redis_client, purge_queues, start_proc, monkeypatch):
    """Tasks a killed worker held come back: unacknowledged ones by re-delivery, and one taken
    off the queue but not yet recorded as unacknowledged (kombu's Redis transport has that
    window) by beat's sweeper re-sending its stale marker."""
    from workers import coalesce
    from workers.tasks import sweep_dirty

    ids = bulk_profiles(catalogue, 6000, plan="sports")
    fast = dict(PREWARM_BROKER_VISIBILITY_TIMEOUT="3")
    worker = start_proc("worker", celery_argv("invalidate", 1), **fast)
    start_proc("relay", **fast)
    Subscription.objects.filter(profile_id__in=ids).update(expires_at=catalogue["now"] - catalogue["hour"])
    worker.wait_for_output("'written': 500", timeout=30)  # one batch done, more held
    worker.kill()  # tasks taken and not yet acknowledged die with it
    # The premise: work was pending when it died (entries not yet rebuilt, tasks still in the broker).
    assert set(all_subs(redis_client, ids)) != {b"[]"}
    with app.connection_for_write() as conn:
        broker = conn.default_channel.client
        assert broker.llen("invalidate") + broker.hlen("unacked") > 0
    start_proc("worker2", **fast)
    monkeypatch.setattr(coalesce, "QUEUED_STALE_MS", 5_000)  # the sweeper's patience, shortened

    def converged():
        if set(all_subs(redis_client, ids)) == {b"[]"}:
            return True
        sweep_dirty()  # what beat runs every 30 s
        return False

    wait_for(converged, timeout=90, interval=1.0, message="every profile rebuilt after the kill")


def test_raw_connection_commit_is_seen_by_a_running_relay(catalogue, redis_client, purge_queues, start_proc):
    """Another service writing the tables (psycopg, no Django) is covered too."""
    start_proc("worker")
    start_proc("relay")
    ids = bulk_profiles(catalogue, 3)
    with relay.connect() as conn, conn.transaction():
        conn.execute("DELETE FROM core_profile WHERE id = %s", [ids[0]])
        conn.execute("UPDATE core_profile SET region_id = %s WHERE id = ANY(%s)", [catalogue["us"].pk, ids[1:]])
    wait_for(lambda: field(redis_client, ids[0], "deleted") == b"1", message="raw delete")
    wait_for(lambda: all(field(redis_client, pk, "region") == b"US-EAST" for pk in ids[1:]), message="raw update")


def test_subscription_expiry_flips_the_cache_on_time_without_a_write(catalogue, redis_client, purge_queues, start_proc):
    from datetime import timedelta

    from django.utils import timezone

    from schedules.tasks import schedule_due

    start_proc("worker")
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    hour = catalogue["hour"]
    s = Subscription.objects.create(profile=p, plan=catalogue["premium"], starts_at=catalogue["now"] - hour,
                                    expires_at=timezone.now() + hour)
    wait_for(lambda: subs(redis_client, p.pk) == ["premium"], message="subscription cached")
    # The expiry is set once the worker is up and the entry cached, however slow that was.
    # No relay runs: this edit rebuilds nothing, only beat's exact rebuild can flip the entry.
    expires = timezone.now() + timedelta(seconds=3)
    Subscription.objects.filter(pk=s.pk).update(expires_at=expires)
    assert schedule_due() >= 1
    wait_for(lambda: subs(redis_client, p.pk) == [], timeout=20, message="expiry flipped the entry")
    built = int(redis_client.hget(keys.profile_key(p.pk), "built_at")) / 1000
    assert built >= expires.timestamp()


def test_cache_redis_restart_loses_no_invalidation(catalogue, purge_queues, start_proc, throwaway_redis):
    """The cache Redis goes away (and comes back empty): changes made meanwhile still land."""
    import redis

    cache = redis.Redis.from_url(throwaway_redis.url)
    ids = bulk_profiles(catalogue, 100)
    start_proc("worker", REDIS_URL=throwaway_redis.url)
    start_proc("relay", REDIS_URL=throwaway_redis.url)
    raw_sql(("UPDATE core_profile SET isp_id = %s WHERE id = ANY(%s)", [catalogue["cable"].pk, ids[:50]]))
    wait_for(lambda: all(field(cache, pk, "isp") == b"cable" for pk in ids[:50]), message="first changes cached")
    throwaway_redis.stop()
    for pk in ids[50:]:
        raw_sql(("UPDATE core_profile SET isp_id = %s WHERE id = %s", [catalogue["cheap"].pk, pk]))
    time.sleep(1.0)
    assert OutboxEvent.objects.count() >= 1  # the relay cannot mark them: the outbox waits
    throwaway_redis.start()
    cache = redis.Redis.from_url(throwaway_redis.url)
    wait_for(lambda: all(field(cache, pk, "isp") == b"cheapnet" for pk in ids[50:]), timeout=60,
             message="changes made while the cache was down")
    wait_for(lambda: OutboxEvent.objects.count() == 0, message="outbox drained")


def test_two_relays_share_the_outbox(catalogue, redis_client, purge_queues, start_proc):
    ids = bulk_profiles(catalogue, 300)
    start_proc("worker")
    small = ["--poll", "0.2", "--batch", "5"]  # small batches: both find rows while the other holds some
    one = start_proc("relay", [sys.executable, "manage.py", "relay", *small], PREWARM_LOG_LEVEL="DEBUG")
    two = start_proc("relay2", [sys.executable, "manage.py", "relay", *small], PREWARM_LOG_LEVEL="DEBUG")
    with relay.connect() as conn, conn.transaction():  # one commit of 300 rows: one NOTIFY wakes both
        for pk in ids:
            conn.execute("UPDATE core_profile SET isp_id = %s WHERE id = %s", [catalogue["cable"].pk, pk])
    wait_for(lambda: OutboxEvent.objects.count() == 0, timeout=30, message="outbox drained by two relays")
    assert "relayed " in one.output() and "relayed " in two.output()  # both took a share
    wait_for(lambda: all(field(redis_client, pk, "isp") == b"cable" for pk in ids), timeout=30, message="converged")
