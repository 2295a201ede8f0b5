"""Beat schedules: synced idempotently; time-driven edges found for the next window, from
where the last scan ended, and queued once each through the real broker."""
import base64
import json
from datetime import timedelta

import pytest
from django_celery_beat.models import PeriodicTask

from core import keys, services
from core.models import Licence, Profile, Subscription
from schedules import beat
from schedules.tasks import due_edges, scan
from tests.queues import purge
from tests.sends import patch_send_task
from workers import edges, events, tasks
from workers.app import INVALIDATE_QUEUE, app

pytestmark = pytest.mark.django_db


def test_sync_is_idempotent_and_keeps_edits_to_state():
    beat.sync()
    first = {t.name: t.pk for t in PeriodicTask.objects.filter(name__startswith="prewarm:")}
    assert len(first) == len(beat.SCHEDULES)
    # An operator pauses the sweeper and someone edits a declared field by hand.
    sweeper = PeriodicTask.objects.get(task="prewarm.sweep_dirty")
    PeriodicTask.objects.filter(pk=sweeper.pk).update(enabled=False, queue="elsewhere")
    beat.sync()
    now = {t.name: t for t in PeriodicTask.objects.filter(name__startswith="prewarm:")}
    assert {name: t.pk for name, t in now.items()} == first  # updated in place, never recreated
    assert now[sweeper.name].enabled is False  # the operator's call stands
    assert now[sweeper.name].queue == "invalidate"  # the declaration wins for what the code owns
    assert PeriodicTask.objects.get(task="prewarm.epg_rollover").queue == "warmup"


def test_due_edges_covers_subscriptions_and_licences_in_the_window(catalogue):
    now, hour = catalogue["now"], catalogue["hour"]
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    q = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    Subscription.objects.create(profile=p, plan=catalogue["basic"], starts_at=now - hour, expires_at=now + hour / 4)
    Subscription.objects.create(profile=q, plan=catalogue["basic"], starts_at=now + hour / 2)
    Subscription.objects.create(profile=q, plan=catalogue["sports"], starts_at=now - hour, expires_at=now + 3 * hour)
    Licence.objects.create(channel=catalogue["local"], region=catalogue["eu"], valid_until=now + hour / 3)
    due = due_edges(now, now + hour)
    assert due == {
        ("profile", now + hour / 4): {p.pk},
        ("profile", now + hour / 2): {q.pk},
        ("region", now + hour / 3): {catalogue["eu"].pk},
    }


def queued_rebuilds():
    """(kind, ids, eta) of every rebuild waiting in the broker's invalidation queue."""
    out = []
    with app.connection_for_write() as conn:
        for raw in conn.default_channel.client.lrange(INVALIDATE_QUEUE, 0, -1):
            message = json.loads(raw)
            args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            assert message["headers"]["task"] == events.REBUILD_TASK
            out.append((args[0], args[1], message["headers"]["eta"], kwargs.get("not_before")))
    return out


@pytest.fixture
def broker_queue(redis_client):
    purge(INVALIDATE_QUEUE)
    redis_client.delete(keys.edges_scanned_key())
    yield
    purge(INVALIDATE_QUEUE)


@pytest.mark.django_db(transaction=True)
def test_a_late_tick_queues_the_edges_the_last_scan_did_not_reach(catalogue, broker_queue):
    """Never stale, 10: the window was anchored at the moment the task ran."""
    now = catalogue["now"]
    scan(now)
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    edge = now + edges.HORIZON + timedelta(seconds=30)  # just past the first scan's reach
    Subscription.objects.create(profile=p, plan=catalogue["basic"], starts_at=now - catalogue["hour"], expires_at=edge)
    purge(INVALIDATE_QUEUE)  # the signal path's task: not the scan's
    scan(edge + timedelta(seconds=70))  # beat was 100 s late
    assert queued_rebuilds() == [("profile", [p.pk], edge.isoformat(), edge.timestamp())]
    scan(edge + timedelta(seconds=80))
    assert len(queued_rebuilds()) == 1  # each edge once


@pytest.mark.django_db(transaction=True)
def test_a_rebuild_queues_an_edge_inside_the_window_already_scanned(catalogue, broker_queue, redis_client):
    """Never stale, 10: an edge created between two ticks and due before the next one was
    never scheduled."""
    now = services.selectors.db_now()
    scan(now)
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    edge = now + timedelta(seconds=60)
    Subscription.objects.create(profile=p, plan=catalogue["basic"], starts_at=now - catalogue["hour"], expires_at=edge)
    purge(INVALIDATE_QUEUE)
    tasks.rebuild.apply(args=("profile", [p.pk]))  # what a worker runs for the subscription's event
    tasks.rebuild.apply(args=("profile", [p.pk]))  # a second event: the edge is queued once
    # At the second after the edge (valid_until is stored in whole seconds).
    at = edge.replace(microsecond=0) + timedelta(seconds=1)
    assert queued_rebuilds() == [("profile", [p.pk], at.isoformat(), at.timestamp())]
    # The ETA task decides the window as of that moment, even on a clock that is behind it.
    tasks.rebuild.apply(args=("profile", [p.pk], at.timestamp()), kwargs={"not_before": at.timestamp()})
    assert redis_client.hget(keys.profile_key(p.pk), "subscriptions") == b"[]"


@pytest.mark.django_db(transaction=True)
def test_a_profile_rebuild_that_writes_a_new_class_queues_the_class_edge(catalogue, broker_queue, redis_client):
    """Never stale: the first viewer of a class builds its entry along with the profile; the
    entry's licence window closes a minute later, and no region rebuild knew the class when
    it queued that edge (or none had run since the last scan)."""
    now = services.selectors.db_now()
    scan(now)
    edge = now + timedelta(seconds=60)
    Licence.objects.create(channel=catalogue["local"], region=catalogue["eu"], valid_until=edge)
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    Subscription.objects.create(profile=p, plan=catalogue["premium"], starts_at=now - catalogue["hour"])
    purge(INVALIDATE_QUEUE)  # the signal path's tasks
    tasks.rebuild.apply(args=("profile", [p.pk]))
    at = edge.replace(microsecond=0) + timedelta(seconds=1)
    assert queued_rebuilds() == [("region", [catalogue["eu"].pk], at.isoformat(), at.timestamp())]


@pytest.mark.django_db(transaction=True)
def test_an_edge_queued_again_after_its_task_started_is_sent_again(catalogue, broker_queue):
    """Never stale: an entry written with an edge whose task already read the rows (a build
    from before the moment that lands after it, a class the task did not know yet) gets
    its own rebuild at once; while the task waits, the edge is sent only once."""
    region = catalogue["eu"].pk
    at = services.selectors.db_now().replace(microsecond=0) + timedelta(seconds=5)
    assert edges.queue(events.REGION, at, [region]) == 1
    assert edges.queue(events.REGION, at, [region]) == 0
    tasks.rebuild.apply(args=(events.REGION, [region], at.timestamp()), kwargs={"not_before": at.timestamp()})
    assert edges.queue(events.REGION, at, [region]) == 1
    assert len(queued_rebuilds()) == 2


def test_an_edge_the_broker_refused_is_sent_by_the_next_ask(catalogue, broker_queue, monkeypatch):
    """Never stale: an edge whose task the broker refused is not left marked as queued, so
    the next scan or rebuild that finds it sends it."""
    from kombu.exceptions import OperationalError

    region = catalogue["eu"].pk
    at = services.selectors.db_now().replace(microsecond=0) + timedelta(seconds=5)

    def refused(*args, **kwargs):
        raise OperationalError("broker down")

    with monkeypatch.context() as m:
        patch_send_task(m, refused)
        with pytest.raises(OperationalError):
            edges.queue(events.REGION, at, [region])
    assert edges.queue(events.REGION, at, [region]) == 1
    assert queued_rebuilds() == [(events.REGION, [region], at.isoformat(), at.timestamp())]


def test_an_edge_task_lost_after_it_was_sent_is_sent_again_by_the_sweeper(catalogue, broker_queue, redis_client):
    """Never stale: an edge task lost in the broker (kombu's BRPOP took it as its connection
    died) has no marker; the sweeper finds its ids still waiting past its moment and sends
    it again, once per LOST_AFTER_SECONDS, until a task starts on them."""
    region = catalogue["eu"].pk
    at = services.selectors.db_now().replace(microsecond=0) - timedelta(seconds=edges.LOST_AFTER_SECONDS + 5)
    late = at + timedelta(seconds=edges.LOST_AFTER_SECONDS + 3)  # due, not yet lost
    assert edges.queue(events.REGION, at, [region]) == 1
    assert edges.queue(events.REGION, late, [region]) == 1
    purge(INVALIDATE_QUEUE)  # the broker lost both
    tasks.sweep_dirty.apply()
    assert queued_rebuilds() == [(events.REGION, [region], None, at.timestamp())]
    tasks.sweep_dirty.apply()
    assert len(queued_rebuilds()) == 1  # given as long again before the next try
    tasks.rebuild.apply(args=(events.REGION, [region], at.timestamp()), kwargs={"not_before": at.timestamp()})
    assert edges.due(at.timestamp() + 1) == []  # started: forgotten


def test_a_malformed_pending_edge_is_forgotten_with_a_log_line_not_a_failed_sweep(catalogue, broker_queue,
                                                                                   redis_client, caplog):
    """The pending index's members name edge keys: one that is not `<kind>:<second>` (written
    by something else) made every sweep after it fail (a ValueError in int(), or a key from
    junk); it is now said and dropped, and the good edges beside it still come back."""
    region = catalogue["eu"].pk
    at = services.selectors.db_now().replace(microsecond=0) - timedelta(seconds=5)
    assert edges.queue(events.REGION, at, [region]) == 1
    junk = ["x}*:5", "region:abc", "region", "region:99999999999999999999", "é:1"]
    redis_client.zadd(keys.edges_pending_key(), dict.fromkeys(junk, at.timestamp()))
    with caplog.at_level("ERROR", logger="workers.edges"):
        assert edges.due(at.timestamp() + 1) == [(events.REGION, int(at.timestamp()), [region])]
    assert sorted(m.decode() for m in redis_client.zrange(keys.edges_pending_key(), 0, -1)) == [
        f"region:{int(at.timestamp())}"
    ]
    assert len([r for r in caplog.records if "forgetting a malformed edge" in r.getMessage()]) == len(junk)
