"""Signal path and relay against real Postgres, Redis and broker (no worker: queues inspected)."""
import pytest
from django.db import transaction
from kombu.exceptions import OperationalError as KombuOperationalError

from core import keys
from core.models import OutboxEvent, Profile, Subscription
from workers import coalesce, events, relay, tasks
from workers.app import app

pytestmark = pytest.mark.django_db(transaction=True)


def queued(queue="invalidate"):
    with app.connection_for_write() as conn:
        return conn.default_channel.client.llen(queue)


@pytest.fixture
def clean(redis_client, purge_queues):
    return redis_client


def test_commit_queues_one_rebuild_rollback_queues_nothing(catalogue, clean):
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    clean.delete(keys.dirty_key("profile"))
    app.connection_for_write().default_channel.queue_purge("invalidate")
    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012  the block is the transaction
        Subscription.objects.create(profile=p, plan=catalogue["basic"], starts_at=catalogue["now"])
        raise RuntimeError("abort")
    assert queued() == 0 and not clean.hexists(keys.dirty_key("profile"), p.pk)
    with transaction.atomic():
        for plan in ("basic", "sports", "premium"):
            Subscription.objects.create(profile=p, plan=catalogue[plan], starts_at=catalogue["now"])
        assert queued() == 0  # nothing leaves before the commit
    assert queued() == 1  # three changes to one profile, coalesced into one task
    assert clean.hexists(keys.dirty_key("profile"), p.pk)


def test_coalescing_queues_again_once_the_rebuild_started(clean):
    assert coalesce.claim("profile", [7, 8], "sa") == [7, 8]
    coalesce.queued("profile", [7, 8], "sa")
    assert all(coalesce.claim("profile", [7, 8], "sb") == [] for _ in range(50))
    assert coalesce.claim("profile", [7, 8], "rrelay") == []  # queued: the relay skips too
    coalesce.release("profile", [7])  # what a task does before reading Postgres
    assert coalesce.claim("profile", [7, 8], "sc") == [7]


def test_a_dead_relays_claim_is_taken_over_by_the_next_relay(clean):
    assert coalesce.claim("profile", [5], "rdead") == [5]  # the relay died before publishing
    assert coalesce.claim("profile", [5], "ssignal") == []  # a signal producer trusts it...
    assert coalesce.claim("profile", [5], "rnext") == [5]  # ...the relay re-reading its rows does not
    coalesce.queued("profile", [5], "rdead")  # a late confirm of the dead claim does nothing
    assert clean.hget(keys.dirty_key("profile"), 5).startswith(b"crnext:")


def test_a_dead_web_process_claim_goes_stale_and_the_sweeper_sends_it(clean):
    assert coalesce.claim("profile", [6], "sdead") == [6]  # died between claim and publish
    assert coalesce.claim("profile", [6], "rrelay") == []  # the relay trusts a fresh claim
    later = coalesce.now_ms() + coalesce.CLAIM_STALE_MS + 1
    assert coalesce.stale("profile", now=later) == [6]
    assert coalesce.claim("profile", [6], "ssweeper", now=later) == [6]


def test_failed_publish_drops_only_its_own_claims(clean):
    coalesce.claim("profile", [1, 2], "sa")
    coalesce.unclaim("profile", [1, 2], "sb")
    assert clean.hlen(keys.dirty_key("profile")) == 2
    coalesce.unclaim("profile", [1, 2], "sa")
    assert clean.hlen(keys.dirty_key("profile")) == 0


def test_an_abandoned_claim_is_stale_at_once_and_only_its_owner_can_abandon_it(clean):
    coalesce.claim("profile", [3, 4], "sa")
    coalesce.abandon("profile", [3, 4], "sb")  # not sb's claims: untouched, still fresh
    assert coalesce.stale("profile") == [] and coalesce.claim("profile", [3, 4], "sc") == []
    coalesce.abandon("profile", [3, 4], "sa")
    assert sorted(coalesce.stale("profile")) == [3, 4]
    assert coalesce.claim("profile", [3, 4], "sc") == [3, 4]  # the next producer takes them over


def test_a_web_publish_that_fails_after_the_relay_trusted_its_claim_is_resent_by_the_sweeper(
    catalogue, clean, monkeypatch
):
    """Never stale, 3: the relay skips a web process's fresh claim and deletes its row; if
    that web process's publish then fails, the sweeper must still find the id."""
    from workers.tasks import sweep_dirty

    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    app.connection_for_write().default_channel.queue_purge("invalidate")
    clean.delete(keys.dirty_key("profile"))
    OutboxEvent.objects.all().delete()
    Profile.objects.filter(pk=p.pk).update(isp=catalogue["cable"])  # the change's outbox row

    def relay_runs_then_the_broker_refuses(*args, **kwargs):
        # Between the web process's claim and its send, the relay drains the row: it trusts
        # the fresh claim, sends nothing, deletes the row. Then the web's send fails.
        with relay.connect() as conn:
            assert relay.drain(conn) == 1
        raise KombuOperationalError("broker down")

    monkeypatch.setattr(app, "send_task", relay_runs_then_the_broker_refuses)
    with pytest.raises(KombuOperationalError):
        events.publish("profile", [p.pk], None)  # the signal path's publish
    monkeypatch.undo()
    assert queued() == 0 and not OutboxEvent.objects.exists()  # no task, no row ...
    assert sweep_dirty() == 1  # ... yet the sweeper (beat, every 30 s) finds the id
    assert queued() == 1


def test_queued_markers_go_stale_later_than_claims(clean):
    coalesce.claim("profile", [9], "sa")
    coalesce.queued("profile", [9], "sa")
    now = coalesce.now_ms()
    assert coalesce.stale("profile", now=now + coalesce.CLAIM_STALE_MS + 1) == []
    assert coalesce.stale("profile", now=now + coalesce.QUEUED_STALE_MS + 1) == [9]
    assert coalesce.claim("profile", [9], "sb", now=now + coalesce.QUEUED_STALE_MS + 1) == [9]


def test_relay_moves_outbox_rows_to_the_broker_and_deletes_them(catalogue, clean):
    OutboxEvent.objects.all().delete()  # the catalogue's own events
    Profile.objects.bulk_create([Profile(region=catalogue["eu"], isp=catalogue["fibra"]) for _ in range(1200)])
    clean.delete(keys.dirty_key("profile"))  # forget what the signal path already queued
    app.connection_for_write().default_channel.queue_purge("invalidate")
    assert OutboxEvent.objects.count() > 0
    with relay.connect() as conn:
        assert relay.drain(conn) > 0
        assert relay.backlog(conn)[0] == 0
    assert queued() == 3  # 1200 ids in tasks of 500


def test_relay_keeps_rows_when_the_broker_refuses(catalogue, clean, monkeypatch):
    Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    clean.delete(keys.dirty_key("profile"))
    rows = OutboxEvent.objects.count()

    def refuse(*args, **kwargs):
        raise KombuOperationalError("broker down")

    monkeypatch.setattr(app, "send_task", refuse)  # events publish by task name through the app
    with relay.connect() as conn, pytest.raises(KombuOperationalError):
        relay.drain_once(conn)
    assert OutboxEvent.objects.count() == rows
    assert clean.hlen(keys.dirty_key("profile")) == 0  # un-claimed, so the retry queues it
    monkeypatch.undo()
    with relay.connect() as conn:
        assert relay.drain(conn) == rows


def test_invalidate_and_warmup_queues_never_share_a_message(catalogue, clean):
    from core.models import Channel
    from workers.app import WARMUP_QUEUE

    app.connection_for_write().default_channel.queue_purge("warmup")
    app.send_task(events.REBUILD_TASK, ("channel", [Channel.objects.first().pk]), queue=WARMUP_QUEUE)
    assert queued("warmup") == 1 and queued("invalidate") == 0
    tasks.rebuild.delay("channel", [Channel.objects.first().pk])
    assert queued("warmup") == 1 and queued("invalidate") == 1


def test_relay_sends_even_when_a_dead_relay_left_a_claim(catalogue, clean):
    OutboxEvent.objects.all().delete()
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    app.connection_for_write().default_channel.queue_purge("invalidate")
    clean.delete(keys.dirty_key("profile"))  # forget the signal path's task, purged above
    coalesce.claim("profile", [p.pk], "rdead")  # claimed, then that relay died before publishing
    with relay.connect() as conn:
        assert relay.drain(conn) == 1
    assert queued() == 1


def test_relay_vacuums_the_outbox_after_enough_rows(catalogue, clean):
    """The machine's autovacuum may be off; the relay keeps its queue table lean itself."""
    from tests.waiting import wait_for

    OutboxEvent.objects.all().delete()
    vacuum = relay.Vacuumer(every=3)
    with relay.connect() as conn, relay.connect() as observer:

        def vacuums():
            observer.execute("SELECT pg_stat_clear_snapshot()")
            return observer.execute(
                "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'prewarm_outbox'"
            ).fetchone()[0]

        before = vacuums()
        vacuum.relayed(conn, 2)
        assert vacuum.pending == 2 and vacuums() == before  # not yet
        vacuum.relayed(conn, 2)  # runs VACUUM: must work on the relay's autocommit connection
        assert vacuum.pending == 0
        wait_for(lambda: vacuums() == before + 1, timeout=10, message="the outbox vacuumed once")


def test_relay_logs_each_batch_at_debug_level(catalogue, clean, caplog):
    import re

    OutboxEvent.objects.all().delete()
    Profile.objects.bulk_create(Profile(region=catalogue["eu"], isp=catalogue["fibra"]) for _ in range(3))
    clean.delete(keys.dirty_key("profile"))  # forget what the signal path already queued
    rows = OutboxEvent.objects.count()
    with caplog.at_level("DEBUG", logger="prewarm.relay"), relay.connect() as conn:
        assert relay.drain_once(conn) == rows
    [line] = [r.getMessage() for r in caplog.records if r.name == "prewarm.relay"]
    assert re.fullmatch(rf"relayed {rows} rows: profile 3 ids; 1 tasks published in \d+\.\d ms", line), line


def test_a_rebuild_that_fails_without_retry_leaves_its_ids_for_the_sweeper(catalogue, clean, monkeypatch):
    """Never stale, 4: the task released the markers before reading; an error that is not
    retried (READONLY after a failover, OOM, BUSY) must not lose the event."""
    import redis as redis_lib

    from workers.tasks import sweep_dirty

    def readonly(ids):
        raise redis_lib.ResponseError("READONLY You can't write against a read only replica.")

    monkeypatch.setitem(tasks._REBUILDERS, "profile", readonly)
    coalesce.claim("profile", [41], "sa")
    coalesce.queued("profile", [41], "sa")
    with pytest.raises(redis_lib.ResponseError):
        tasks.rebuild.apply(("profile", [41], None), throw=True)
    assert coalesce.stale("profile") == [41]
    monkeypatch.undo()
    app.connection_for_write().default_channel.queue_purge("invalidate")
    assert sweep_dirty() == 1 and queued() == 1
    coalesce.claim("profile", [42], "sb")
    coalesce.queued("profile", [42], "sb")
    tasks.rebuild.apply(("profile", [42], None), throw=True)  # a rebuild that works leaves nothing
    assert not clean.hexists(keys.dirty_key("profile"), 42)
