"""The relay wakes on the triggers' NOTIFY (not its poll), survives losing its LISTEN backend, and
the relay and worker both ride out a Postgres that refuses them for a while."""
import sys
import time

import psycopg
import pytest
from django.db import connection

from core import keys
from core.models import Profile
from tests.processes import celery_argv
from tests.waiting import wait_for
from workers import relay

pytestmark = pytest.mark.django_db(transaction=True)

LONG_POLL = ["--poll", "120"]  # far longer than any wait below: only a NOTIFY can wake it in time


def relay_argv(*extra):
    return [sys.executable, "manage.py", "relay", *extra]


def raw_isp(profile_id, isp_id):
    """A change from outside Django: raw SQL on a connection of its own (no signal path)."""
    with relay.connect() as conn:
        conn.execute("UPDATE core_profile SET isp_id = %s WHERE id = %s", [isp_id, profile_id])


def isp_of(client, pk):
    return client.hget(keys.profile_key(pk), "isp")


def listener_pids() -> list[int]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN %%'"
            " AND pid <> pg_backend_pid()"
        )
        return [r[0] for r in cur.fetchall()]


def test_notify_wakes_the_relay_and_a_lost_listener_loses_nothing(catalogue, redis_client, purge_queues, start_proc):
    c = catalogue
    start_proc("worker")
    rel = start_proc("relay", relay_argv(*LONG_POLL))
    p = Profile.objects.create(region=c["eu"], isp=c["fibra"])
    wait_for(lambda: isp_of(redis_client, p.pk) == b"fibra", message="profile built (signal path)")

    started = time.monotonic()
    raw_isp(p.pk, c["cable"].pk)
    wait_for(lambda: isp_of(redis_client, p.pk) == b"cable", timeout=10, message="raw SQL change relayed on NOTIFY")
    assert time.monotonic() - started < 10 < 120  # the poll could not have done it

    # Kill the relay's LISTEN backend, and write while it reconnects.
    pids = wait_for(listener_pids, message="the relay's LISTEN backend")
    with connection.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [pids])
    raw_isp(p.pk, c["cheap"].pk)
    wait_for(lambda: isp_of(redis_client, p.pk) == b"cheapnet", timeout=20, message="change written during reconnect")
    assert "relay lost Postgres" in rel.output()
    assert rel.running()

    # SIGTERM is obeyed at once, however long the poll (False: it had to be SIGKILLed).
    assert rel.stop(grace=5)
    assert "relay stopped" in rel.output()


def set_connections(allowed: bool):
    """Refuse (or allow again) new sessions on the test database, ending all but this test's own."""
    name = connection.settings_dict["NAME"]
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        mine = cur.fetchone()[0]
    params = {**connection.get_connection_params(), "dbname": "postgres"}
    params.pop("cursor_factory", None)
    params.pop("context", None)
    # A database cannot refuse connections from a session on itself: do it from another one.
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allowed else "false"}')
        if not allowed:  # the relay's and the worker's sessions end now
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                [name, mine],
            )


def test_postgres_refusing_the_relay_and_worker_then_back_converges(catalogue, redis_client, purge_queues, start_proc):
    c = catalogue
    # One pool process: its connection is certainly among those Postgres ends.
    one_child = celery_argv("invalidate", 1)
    worker = start_proc("worker", one_child)
    rel = start_proc("relay", relay_argv(*LONG_POLL))
    by_signal = Profile.objects.create(region=c["eu"], isp=c["fibra"])
    by_sql = Profile.objects.create(region=c["eu"], isp=c["fibra"])
    for p in (by_signal, by_sql):
        wait_for(lambda p=p: isp_of(redis_client, p.pk) == b"fibra", message="profiles built")
    set_connections(False)
    try:
        by_signal.isp = c["cable"]
        by_signal.save()  # ORM: the signal path queues a task at once
        with connection.cursor() as cur:  # raw SQL: an outbox row, waiting for the relay
            cur.execute("UPDATE core_profile SET isp_id = %s WHERE id = %s", [c["cable"].pk, by_sql.pk])
        # The worker's rebuild fails on Postgres and is retried with backoff; the relay keeps retrying.
        worker.wait_for_output("Retry in", timeout=30)
        rel.wait_for_output("relay lost Postgres", timeout=30)
        time.sleep(1)
        assert isp_of(redis_client, by_signal.pk) == isp_of(redis_client, by_sql.pk) == b"fibra"
    finally:
        set_connections(True)
    for p in (by_signal, by_sql):
        wait_for(lambda p=p: isp_of(redis_client, p.pk) == b"cable", timeout=60, interval=0.2, message="converged")
    assert worker.running() and rel.running()
