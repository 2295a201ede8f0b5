"""Signal path and relay against real Postgres, Redis and broker (no worker: queues inspected)."""
import re

import pytest
from django.db import transaction
from kombu.exceptions import OperationalError as KombuOperationalError

from core import keys
from core.models import OutboxEvent, Profile, Subscription
from tests.queues import purge
from tests.sends import patch_send_task
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
    purge("invalidate")
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
    coalesce.start("profile", [7])  # what a task does before reading Postgres
    assert coalesce.claim("profile", [7, 8], "sc") == [7]


def test_a_running_marker_counts_as_absent_for_every_producer(clean):
    """The run may have read the rows before this change: an event during it queues another."""
    coalesce.claim("profile", [10, 11], "sa")
    coalesce.queued("profile", [10, 11], "sa")
    coalesce.start("profile", [10, 11])
    assert clean.hget(keys.dirty_key("profile"), 10).startswith(b"r")
    assert coalesce.claim("profile", [10], "sweb") == [10]  # a web process claims over it
    assert coalesce.claim("profile", [11], "rrelay") == [11]  # and so does a relay
    assert coalesce.stale("profile") == []  # fresh claims now, none stale


def test_a_finished_run_drops_only_its_own_running_markers(clean):
    run = coalesce.start("profile", [12, 13, 14])
    coalesce.claim("profile", [12], "sb")  # an event during the run ...
    coalesce.queued("profile", [12], "sb")  # ... queued its rebuild
    other = coalesce.start("profile", [13])  # a duplicate run (re-delivery, sweeper) took 13 over
    coalesce.done("profile", [12, 13, 14], run)
    markers = clean.hgetall(keys.dirty_key("profile"))
    assert markers[b"12"].startswith(b"q")  # the newer event's rebuild still stands
    assert markers[b"13"].startswith(f"r{other}:".encode())  # the other run's marker stays
    assert b"14" not in markers  # this run's own marker is gone
    coalesce.done("profile", [13], other)
    assert not clean.hexists(keys.dirty_key("profile"), 13)


def test_a_failed_run_leaves_its_own_markers_stale_and_newer_ones_alone(clean):
    run = coalesce.start("profile", [15, 16, 17])
    coalesce.claim("profile", [16], "sb")
    coalesce.queued("profile", [16], "sb")  # an event during the run: its task will rebuild 16
    clean.hdel(keys.dirty_key("profile"), 17)  # the hash lost a field meanwhile (eviction, flush)
    coalesce.failed("profile", [15, 16, 17], run)
    assert coalesce.stale("profile") == [15, 17]  # at once, not RUNNING_STALE_MS later
    assert clean.hget(keys.dirty_key("profile"), 16).startswith(b"q")


def test_a_running_marker_goes_stale_after_running_stale_ms_and_the_sweeper_resends_it(clean):
    """Never stale, 5: a run that dies (SIGKILL, OOM, hard time limit) leaves its marker."""
    from workers.tasks import sweep_dirty

    started = coalesce.now_ms()
    coalesce.start("profile", [18], now=started)
    assert coalesce.stale("profile", now=started + coalesce.RUNNING_STALE_MS) == []
    assert coalesce.stale("profile", now=started + coalesce.RUNNING_STALE_MS + 1) == [18]
    coalesce.start("profile", [19], now=started - coalesce.RUNNING_STALE_MS - 1)  # a run that died long ago
    assert sweep_dirty() == 1 and queued() == 1
    assert clean.hget(keys.dirty_key("profile"), 19).startswith(b"q")  # re-queued, and only that one


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
    purge("invalidate")
    clean.delete(keys.dirty_key("profile"))
    OutboxEvent.objects.all().delete()
    Profile.objects.filter(pk=p.pk).update(isp=catalogue["cable"])  # the change's outbox row

    def relay_runs_then_the_broker_refuses(*args, **kwargs):
        # Between the web process's claim and its send, the relay drains the row: it trusts
        # the fresh claim, sends nothing, deletes the row. Then the web's send fails.
        with relay.connect() as conn:
            assert relay.drain(conn) == 1
        raise KombuOperationalError("broker down")

    patch_send_task(monkeypatch, relay_runs_then_the_broker_refuses)
    with pytest.raises(KombuOperationalError):
        events.publish("profile", [p.pk], None)  # the signal path's publish
    monkeypatch.undo()
    assert queued() == 0 and not OutboxEvent.objects.exists()  # no task, no row ...
    assert sweep_dirty() == 1  # ... yet the sweeper (beat, every 30 s) finds the id
    assert queued() == 1


def test_a_short_batch_ends_the_drain_and_a_full_one_does_not(catalogue, clean, monkeypatch):
    """A batch with fewer rows than asked for saw the whole outbox; every row committed after
    it sends its own NOTIFY, so asking again would only cost round trips."""
    OutboxEvent.objects.all().delete()
    for _ in range(5):
        Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])  # one row each
    takes = []
    real = relay.drain_once
    monkeypatch.setattr(relay, "drain_once", lambda conn, n: takes.append(real(conn, n)) or takes[-1])
    with relay.connect() as conn:
        assert relay.drain(conn, batch_rows=10) == 5
        assert takes == [5]
        for _ in range(5):
            Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
        takes.clear()
        assert relay.drain(conn, batch_rows=2) == 5
        assert takes == [2, 2, 1]
    assert not OutboxEvent.objects.exists()


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
    purge("invalidate")
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

    patch_send_task(monkeypatch, refuse)  # events publish by task name through the app
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

    purge("warmup")
    app.send_task(events.REBUILD_TASK, ("channel", [Channel.objects.first().pk]), queue=WARMUP_QUEUE)
    assert queued("warmup") == 1 and queued("invalidate") == 0
    tasks.rebuild.delay("channel", [Channel.objects.first().pk])
    assert queued("warmup") == 1 and queued("invalidate") == 1


def test_relay_sends_even_when_a_dead_relay_left_a_claim(catalogue, clean):
    OutboxEvent.objects.all().delete()
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    purge("invalidate")
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

    def readonly(ids, not_before):
        raise redis_lib.ResponseError("READONLY You can't write against a read only replica.")

    monkeypatch.setitem(tasks._REBUILDERS, "profile", readonly)
    coalesce.claim("profile", [41], "sa")
    coalesce.queued("profile", [41], "sa")
    with pytest.raises(redis_lib.ResponseError):
        tasks.rebuild.apply(("profile", [41], None), throw=True)
    assert coalesce.stale("profile") == [41]
    monkeypatch.undo()
    purge("invalidate")
    assert sweep_dirty() == 1 and queued() == 1
    coalesce.claim("profile", [42], "sb")
    coalesce.queued("profile", [42], "sb")
    tasks.rebuild.apply(("profile", [42], None), throw=True)  # a rebuild that works leaves nothing
    assert not clean.hexists(keys.dirty_key("profile"), 42)


def test_a_rebuild_marks_its_ids_running_and_clears_only_its_own_markers(catalogue, clean, monkeypatch):
    """Never stale, 5: while the task runs its ids carry running markers (so a run that dies
    is swept); an event during the run queues one more rebuild, which the run's end keeps."""
    from core import services

    seen = {}

    def rebuilder(ids, not_before):
        dirty = clean.hgetall(keys.dirty_key("profile"))
        seen["markers"] = {int(k): v[:1] for k, v in dirty.items()}
        seen["if it died"] = coalesce.stale("profile", now=coalesce.now_ms() + coalesce.RUNNING_STALE_MS + 1)
        assert coalesce.claim("profile", [43], "sweb") == [43]  # a change lands during the run
        coalesce.queued("profile", [43], "sweb")
        return services.Outcome()

    monkeypatch.setitem(tasks._REBUILDERS, "profile", rebuilder)
    coalesce.claim("profile", [43, 44], "sa")
    coalesce.queued("profile", [43, 44], "sa")
    tasks.rebuild.apply(("profile", [43, 44, 45], None), throw=True)  # 45 came with no marker (beat's ETA)
    assert seen["markers"] == {43: b"r", 44: b"r", 45: b"r"}
    assert seen["if it died"] == [43, 44, 45]  # the sweeper would have re-sent them all
    markers = clean.hgetall(keys.dirty_key("profile"))
    assert list(markers) == [b"43"] and markers[b"43"].startswith(b"q")  # the newer event's rebuild


def _argc(command: bytes) -> int:
    """A SLOWLOG entry keeps 31 arguments, then says "... (N more arguments)"."""
    more = re.search(rb"\.\.\. \((\d+) more arguments\)$", command)
    return 31 + int(more.group(1)) if more else len(command.split())


def test_publish_claims_a_region_wide_event_in_short_slices(clean, purge_queues, monkeypatch):
    """A region-wide change can be one outbox row of a million ids: no single script call may
    hold Redis for all of them. Counted on the server: SLOWLOG records every call's arguments."""
    import hashlib

    n = 3 * events.CLAIM_CHUNK + 123
    coalesce.claim("profile", range(2, n, 10), "sother")  # a tenth already queued by another producer
    coalesce.queued("profile", list(range(2, n, 10)), "sother")
    patch_send_task(monkeypatch, lambda *a, **kw: None)  # the broker is not under test
    sha = {hashlib.sha1(src.encode()).hexdigest().encode(): name
           for name, src in (("claim", coalesce._CLAIM), ("settle", coalesce._SETTLE))}
    config = clean.config_get("slowlog-*")
    clean.config_set("slowlog-log-slower-than", 0)
    clean.config_set("slowlog-max-len", 100_000)  # a script's own HGET/HSET may be logged too
    clean.slowlog_reset()
    try:
        tasks_sent = events.publish("profile", range(1, n + 1), None, relay=True)
        log = clean.slowlog_get(100_000)
    finally:
        for name, value in config.items():
            clean.config_set(name, value)
    dirty = keys.dirty_key("profile").encode()
    calls = [(sha[c.split()[1]], _argc(c)) for c in (e["command"] for e in reversed(log))
             if c.startswith(b"EVALSHA ") and c.split()[3] == dirty]
    # EVALSHA, sha, numkeys, 2 keys, then 6 fixed ARGV for a claim and 4 (no tickets) for a settle.
    claimed = [argc - 11 for name, argc in calls if name == "claim"]
    settled = [argc - 9 for name, argc in calls if name == "settle"]
    assert claimed == [events.CLAIM_CHUNK] * 3 + [123]
    assert len(settled) == 4 and max(settled) < events.CLAIM_CHUNK + events.BATCH
    fresh = n - len(range(2, n, 10))
    assert tasks_sent == -(-fresh // events.BATCH)  # full tasks across the slices: no half-empty ones
    assert all(v.startswith(b"q") for v in clean.hvals(keys.dirty_key("profile")))


def _failing_send(after: int):
    """send_task that accepts `after` tasks, then fails as a broker outage would."""
    sent = []

    def send(name, args, kwargs=None, **options):
        if len(sent) >= after:
            raise KombuOperationalError("broker down")
        sent.append(args[1])

    return send, sent


@pytest.mark.parametrize("relay", [True, False], ids=["relay", "signal path"])
def test_a_publish_that_fails_mid_way_keeps_what_was_sent_and_gives_back_the_rest(clean, monkeypatch, relay):
    n = 3 * events.CLAIM_CHUNK
    send, sent = _failing_send(after=3)  # the second slice's second task fails
    patch_send_task(monkeypatch, send)
    with pytest.raises(KombuOperationalError):
        events.publish("profile", range(1, n + 1), None, relay=relay)
    markers = {int(k): v for k, v in clean.hgetall(keys.dirty_key("profile")).items()}
    done = [i for batch in sent for i in batch]
    assert done == list(range(1, 3 * events.BATCH + 1))  # three tasks went out ...
    assert all(markers[i].startswith(b"q") for i in done)  # ... and stay queued
    held = range(3 * events.BATCH + 1, 2 * events.CLAIM_CHUNK + 1)  # claimed, not sent
    if relay:  # the outbox row stays: its retry claims these again
        assert not any(i in markers for i in held)
    else:  # the relay may have trusted these claims: stale at once, for the sweeper
        assert set(coalesce.stale("profile")) == set(held)
    assert not any(i in markers for i in range(2 * events.CLAIM_CHUNK + 1, n + 1))  # never claimed
    monkeypatch.undo()
    if relay:  # the relay's retry of the same row sends only what is left
        patch_send_task(monkeypatch, _failing_send(after=10**6)[0])
        assert events.publish("profile", range(1, n + 1), None, relay=True) == (n - len(done)) // events.BATCH


# -- batching under load: tickets of waiting tasks hold producers back ---------------------


def test_a_ticket_counts_as_waiting_until_its_run_starts_or_it_goes_stale(clean):
    coalesce.register(["t1", "t2"])
    clean.zadd(keys.inflight_key(), {"lost": coalesce.now_ms() - coalesce.TICKET_STALE_MS - 1})
    assert coalesce.waiting() == 2  # the lost task's ticket no longer counts
    coalesce.start("profile", [1], ticket="t1")
    assert coalesce.waiting() == 1
    assert clean.llen(keys.bell_key()) == 1  # and the start rang the bell for a holding relay


def test_the_relay_holds_rows_while_tasks_wait_then_sends_them_in_one_task(catalogue, clean, monkeypatch, settings):
    import threading
    import time

    settings.PREWARM_WAITING_TASKS = 2
    coalesce.register(["busy1", "busy2"])  # two tasks published, no worker has started them
    sent = []
    real_send = app.send_task
    patch_send_task(monkeypatch, lambda *a, **kw: (sent.append(a[1]), real_send(*a, **kw))[1])
    ps = [Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"]) for _ in range(30)]
    assert sent == []  # the signal path left them to the relay: tasks are waiting
    rows = OutboxEvent.objects.count()
    assert rows >= 30
    with relay.connect() as conn:
        gate = relay.Gate()
        done = []
        thread = threading.Thread(target=lambda: done.append(relay.drain(conn, gate=gate)))
        thread.start()
        time.sleep(0.4)
        assert thread.is_alive() and sent == [] and OutboxEvent.objects.count() == rows  # held
        coalesce.start("profile", [], ticket="busy1")  # a worker takes one of them
        thread.join(timeout=5)
    assert done == [rows]
    profile_tasks = [ids for kind, ids, _committed in sent if kind == "profile"]
    assert len(profile_tasks) == 1 and set(profile_tasks[0]) == {p.pk for p in ps}  # one task for all thirty


def test_a_web_process_sends_its_own_change_when_nothing_waits(catalogue, clean, settings):
    settings.PREWARM_WAITING_TASKS = 2
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    assert queued() == 1 and clean.hexists(keys.dirty_key("profile"), p.pk)


def test_a_failed_send_drops_the_ticket_it_registered(clean, monkeypatch):
    def refuse(*args, **kwargs):
        raise KombuOperationalError("broker down")

    patch_send_task(monkeypatch, refuse)
    with pytest.raises(KombuOperationalError):
        events.publish("profile", range(1, 2 * events.BATCH + 1), None, relay=True)
    assert coalesce.waiting() == 0  # no ticket of a task never sent holds anyone back


def test_only_tasks_sent_keep_their_tickets_when_a_send_fails_mid_way(clean, monkeypatch):
    real_send, calls = app.send_task, []

    def second_fails(*args, **kwargs):
        calls.append(args[2]["ticket"])  # send_task(name, args, kwargs, queue=...)
        if len(calls) == 2:
            raise KombuOperationalError("broker down")
        return real_send(*args, **kwargs)

    patch_send_task(monkeypatch, second_fails)
    with pytest.raises(KombuOperationalError):
        events.publish("profile", range(1, 2 * events.BATCH + 1), None)
    tickets = {m.decode() for m in clean.zrange(keys.inflight_key(), 0, -1)}
    assert len(calls) == 2 and tickets == {calls[0]}  # the sent task waits; the failed one does not


def test_a_malformed_outbox_row_is_reported_and_never_holds_the_others_back(catalogue, clean, caplog):
    """Anyone with INSERT on the outbox can write any row. A NULL in ids once made every batch
    fail (the relay retried the same head row for ever, and no event after it was relayed);
    an unknown kind vanished with one line for the kind. Each bad row is now named in the log
    with its reason, and every good id, even one beside a NULL, is relayed."""
    from django.db import connection

    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    OutboxEvent.objects.all().delete()
    clean.delete(keys.dirty_key("profile"))
    purge("invalidate")
    with connection.cursor() as cur:
        cur.execute(
            """INSERT INTO prewarm_outbox (kind, ids) VALUES
               ('profile', ARRAY[NULL, %s]::bigint[]), ('bogus', '{1}'), ('region', '{{1,2},{3,4}}'),
               ('profile', '{-4}'), ('channel', '{}') RETURNING id""",
            [p.pk],
        )
        ids = [row[0] for row in cur.fetchall()]
    with caplog.at_level("ERROR", logger="prewarm.relay"), relay.connect() as conn:
        assert relay.drain(conn) == 5
        assert relay.backlog(conn)[0] == 0
    assert queued() == 1 and clean.hexists(keys.dirty_key("profile"), p.pk)  # the good id beside the NULL
    said = {r.getMessage() for r in caplog.records if r.name == "prewarm.relay" and r.levelname == "ERROR"}
    assert said == {
        f"outbox row {ids[0]} refused: 1 profile ids are not row ids: [None]",
        f"outbox row {ids[1]} refused: unknown kind 'bogus' with ids [1]",
        f"outbox row {ids[2]} refused: 2 region ids are not row ids: [[1, 2], [3, 4]]",
        f"outbox row {ids[3]} refused: 1 profile ids are not row ids: [-4]",
    }, said


@pytest.mark.parametrize("args", [
    ("x}*", [1]), ("profile", ["1:*"]), ("profile", [True]), ("profile", "12"), ("region", [1.5]),
    ("channel", [-1]), ("channel", [2**63]), ("profile", [[1]]), (None, [1]),
])
def test_a_rebuild_message_that_is_not_an_event_is_refused_and_names_no_key(clean, caplog, args):
    """The broker takes JSON from anyone who reaches it. A task's kind named the markers' key
    (`dirty:<kind>`) before the kind was looked up, and its ids were formatted into keys."""
    from tests.key_grammar import is_key

    before = set(clean.scan_iter(match=f"{keys.prefix()}:*"))
    with caplog.at_level("ERROR", logger="workers.tasks"):
        result = tasks.rebuild.apply(args=args).get()
    assert "refused" in result
    after = set(clean.scan_iter(match=f"{keys.prefix()}:*"))
    assert after == before and all(is_key(k) for k in after), after - before
    assert any(r.getMessage().startswith("refusing a prewarm.rebuild task: ") for r in caplog.records)
