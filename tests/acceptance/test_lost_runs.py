"""A rebuild run lost mid-task (its worker SIGKILLed, the child killed by the hard time
limit, or a solo worker ended by workers.watchdog past it) is re-sent by the sweeper from
its running marker, long before the broker would re-deliver the message (visibility
timeout, 600 s; kept at its default here)."""
import time
from contextlib import contextmanager

import pytest
from django.db import connection

from core import keys
from tests.processes import celery_argv
from tests.rows import bulk_profiles, quiet_isp_change
from tests.waiting import wait_for
from workers import coalesce, events, relay
from workers.app import INVALIDATE_QUEUE, app

pytestmark = pytest.mark.django_db(transaction=True)

# Far below the visibility timeout, far above what the sweep needs here.
CONVERGE_SECONDS = 120
# The sweeper's patience with a running marker, shortened in this process (which runs
# the sweeper, as beat would every 30 s); the workers keep the product's values.
TEST_RUNNING_STALE_MS = 1_000
HARD_LIMIT_SECONDS = 2


def blocked_on_profiles() -> bool:
    """A backend (the worker's rebuild) is waiting for a lock on core_profile."""
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_locks WHERE relation = 'core_profile'::regclass AND NOT granted")
        return cur.fetchone()[0] > 0


@contextmanager
def profiles_locked():
    """Hold core_profile exclusively: every rebuild's SELECT blocks until the block ends."""
    with relay.connect() as conn, conn.transaction():
        conn.execute("LOCK TABLE core_profile IN ACCESS EXCLUSIVE MODE")
        yield


def a_changed_profile(catalogue) -> int:
    """A committed change that nothing has announced yet (no trigger, no signal)."""
    [pk] = bulk_profiles(catalogue, 1)
    quiet_isp_change(pk, catalogue["cable"].pk)
    return pk


def stuck_on_the_lock():
    wait_for(blocked_on_profiles, message="the worker's rebuild blocked in its SELECT")


def sweep_until_rebuilt(redis_client, pk, monkeypatch) -> int:
    """Run the sweeper (as beat does) until the entry is written; returns ids it re-sent."""
    from workers.tasks import sweep_dirty

    monkeypatch.setattr(coalesce, "RUNNING_STALE_MS", TEST_RUNNING_STALE_MS)
    resent = 0

    def rebuilt():
        nonlocal resent
        if redis_client.hget(keys.profile_key(pk), "isp") == b"cable":
            return True
        resent += sweep_dirty()
        return False

    wait_for(rebuilt, timeout=CONVERGE_SECONDS, interval=0.5, message="the lost run's entry rebuilt")
    return resent


def test_a_worker_killed_mid_rebuild_is_swept_long_before_the_visibility_timeout(
    catalogue, redis_client, purge_queues, start_proc, monkeypatch
):
    """Never stale, 5: kill -9, the OOM killer or a lost node takes the main process too."""
    pk = a_changed_profile(catalogue)
    worker = start_proc("worker", celery_argv("invalidate", 1))
    with profiles_locked():
        events.publish(events.PROFILE, [pk], time.time())  # as the signal path announces it
        stuck_on_the_lock()
        worker.kill()  # SIGKILL to the whole process group: main process and pool child
    assert redis_client.hget(keys.profile_key(pk), "isp") is None  # the run died before writing
    start_proc("worker2", celery_argv("invalidate", 1))
    assert sweep_until_rebuilt(redis_client, pk, monkeypatch) >= 1  # the sweeper did it, not re-delivery
    wait_for(lambda: not redis_client.hexists(keys.dirty_key(events.PROFILE), pk), message="markers cleared")


def test_a_run_killed_by_the_hard_time_limit_is_swept(catalogue, redis_client, purge_queues, start_proc, monkeypatch):
    """The pool kills the child and acknowledges the message: nothing re-delivers it."""
    pk = a_changed_profile(catalogue)
    # A message carries the sender's limits when the sender has the task registered (this
    # process has, once workers.tasks is imported): set the hard one on the message, and no
    # soft one anywhere (Celery arms the hard timer only once a soft limit has fired).
    worker = start_proc("worker", celery_argv("invalidate", 1), PREWARM_TASK_SOFT_TIME_LIMIT="0")
    with profiles_locked():
        # By name, as events.publish sends it (unclaimed, like beat's ETA rebuilds: a run marks its ids anyway).
        app.send_task(events.REBUILD_TASK, (events.PROFILE, [pk], time.time()), queue=INVALIDATE_QUEUE,
                      time_limit=HARD_LIMIT_SECONDS, soft_time_limit=None)
        stuck_on_the_lock()
        worker.wait_for_output(f"Hard time limit ({HARD_LIMIT_SECONDS}s) exceeded", timeout=30)
    assert redis_client.hget(keys.profile_key(pk), "isp") is None
    assert sweep_until_rebuilt(redis_client, pk, monkeypatch) >= 1
    assert worker.running()


def test_a_solo_worker_past_the_hard_time_limit_exits_and_its_run_is_swept(
    catalogue, redis_client, purge_queues, start_proc, monkeypatch
):
    """The solo pool (the Procfile's invalidation workers) enforces no time limit of its own:
    the watchdog ends the stuck process for its supervisor to restart, as prefork's kill would."""
    pk = a_changed_profile(catalogue)
    worker = start_proc("worker", celery_argv("invalidate", 1, pool="solo"))
    with profiles_locked():
        app.send_task(events.REBUILD_TASK, (events.PROFILE, [pk], time.time()), queue=INVALIDATE_QUEUE,
                      time_limit=HARD_LIMIT_SECONDS, soft_time_limit=None)
        stuck_on_the_lock()
        wait_for(lambda: not worker.running(), timeout=30, message="the stuck solo worker exited")
    assert worker.popen.returncode == 1, worker.tail()
    assert f"Hard time limit ({HARD_LIMIT_SECONDS}s) exceeded" in worker.output()
    assert redis_client.hget(keys.profile_key(pk), "isp") is None
    start_proc("worker2", celery_argv("invalidate", 1, pool="solo"))  # the supervisor's restart
    assert sweep_until_rebuilt(redis_client, pk, monkeypatch) >= 1
