"""`manage.py warm` as operators run it, against the Procfile's warm-up worker: a job the
worker runs while the command follows it; a worker killed mid-job and beat's resume; Ctrl-C
stops following, not the job."""
import signal
import subprocess
import sys

import pytest

from core import keys
from core.models import Channel, Region
from ops import plan
from ops.models import JobState, WarmupJob
from tests.beat import BEAT, run_every_second
from tests.processes import celery_argv
from tests.rows import bulk_profiles
from tests.waiting import ROOT, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

WARMUP_WORKER = celery_argv("warmup", 1)  # the Procfile's `warmup` line


def cached(client, ids) -> int:
    pipe = client.pipeline(transaction=False)
    for pk in ids:
        pipe.exists(keys.profile_key(pk))
    return sum(pipe.execute())


def warm(env, *args, check=True):
    out = subprocess.run([sys.executable, "manage.py", "warm", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 or not check, out.stdout + out.stderr
    return out


def job_state(job_id):
    return WarmupJob.objects.get(pk=job_id)


def test_warm_all_is_run_by_the_warmup_worker_while_the_command_follows(
    catalogue, redis_client, purge_queues, start_proc, service_env
):
    ids = bulk_profiles(catalogue, 2 * plan.SPAN + 5, plan="premium")
    start_proc("worker-warmup", WARMUP_WORKER)
    out = warm(service_env, "--all")
    job = WarmupJob.objects.get()
    regions, channels = Region.objects.count(), Channel.objects.count()
    assert job.state == JobState.DONE and job.done == job.total >= len(ids) + regions + channels
    assert f"warm-up {job.pk} done: {job.total} of {job.total} entries" in out.stdout
    assert f"{job.written} written, 0 already newer in Redis, 0 failed" in out.stdout
    assert cached(redis_client, ids) == len(ids)
    assert redis_client.keys(keys.prefix() + ":epg:*")
    again = warm(service_env, "--all")  # everything is warm: rewritten, and said so
    assert "0 failed" in again.stdout and WarmupJob.objects.count() == 2


def test_a_job_goes_on_after_its_worker_is_killed_mid_chunk(
    catalogue, redis_client, purge_queues, start_proc, service_env
):
    ids = bulk_profiles(catalogue, 8 * plan.SPAN)
    run_every_second(("prewarm.warmup_resume",))
    quick = {"PREWARM_WARMUP_LEASE_SECONDS": "1", "PREWARM_WARMUP_SENT_STALE_SECONDS": "2"}
    first = start_proc("worker-warmup", WARMUP_WORKER, **quick)
    job_id = int(warm(service_env, "--all", "--detach").stdout.strip().splitlines()[-1])
    wait_for(lambda: job_state(job_id).done > 0, timeout=60, message="a first chunk done")
    first.kill()  # SIGKILL: the chunk it ran and the one it had taken die with it
    assert job_state(job_id).state == JobState.RUNNING
    # A new worker (it also takes beat's resume, on the invalidate queue) and beat.
    start_proc("worker-2", celery_argv("invalidate,warmup", 1), **quick)
    start_proc("beat", BEAT, ready="beat: Starting")
    wait_for(lambda: job_state(job_id).state != JobState.RUNNING, timeout=120, message="the job finished")
    job = job_state(job_id)
    assert job.state == JobState.DONE and job.done == job.total and job.failed == 0
    assert cached(redis_client, ids) == len(ids)


def test_ctrl_c_stops_following_and_the_job_goes_on(
    catalogue, redis_client, purge_queues, start_proc, service_env, tmp_path
):
    ids = bulk_profiles(catalogue, 6 * plan.SPAN)
    argv = [sys.executable, "manage.py", "warm", "--all"]
    log = tmp_path / "warm.out"
    with log.open("w") as out_file, subprocess.Popen(argv, cwd=ROOT, env=service_env, stdout=out_file,
                                                     stderr=subprocess.PIPE, text=True) as run:
        try:
            # Following: its first progress line (not a terminal: one every few seconds).
            wait_for(lambda: "warm-up" in log.read_text(), timeout=60, message="the command following its job")
            run.send_signal(signal.SIGINT)  # the operator's Ctrl-C, before any worker runs
            err = run.communicate(timeout=60)[1]
        finally:
            if run.poll() is None:
                run.kill()
    out = log.read_text()
    job = WarmupJob.objects.get()
    assert run.returncode == 130 and "Traceback" not in err, out + err
    assert f"stopped following warm-up {job.pk}; it goes on (manage.py warm --follow {job.pk}" in err
    start_proc("worker-warmup", WARMUP_WORKER)
    followed = warm(service_env, "--follow", str(job.pk))
    assert f"warm-up {job.pk} done" in followed.stdout
    assert cached(redis_client, ids) == len(ids)


def test_an_event_warm_up_starts_on_time_through_beat(catalogue, redis_client, purge_queues, start_proc):
    """The clocked schedule an event keeps fires in a real beat; a worker runs the job."""
    from datetime import timedelta

    from django.utils import timezone

    from ops import events
    from ops.models import WarmupEvent

    ids = bulk_profiles(catalogue, 50)
    run_every_second(())  # the declared schedules paused: only the event's fires
    at = timezone.now() + timedelta(seconds=4)
    event = events.save(events.apply(WarmupEvent(), {
        "name": "Cup final", "starts_at": (at + timedelta(minutes=30)).isoformat(), "lead_seconds": 1800,
        "scope": {"regions": ["EU-WEST"]},
    }))
    start_proc("worker")
    start_proc("beat", BEAT, ready="beat: Starting")
    wait_for(lambda: event.jobs.exists(), timeout=30, message="the event's warm-up job")
    job = event.jobs.get()
    assert job.created_at >= at - timedelta(seconds=1)  # not before its time
    wait_for(lambda: event.jobs.get().state == JobState.DONE, timeout=60, message="the job done")
    assert cached(redis_client, ids) == len(ids)


def _family(pid: int) -> list[int]:
    """The process and its children (a prefork worker's pool)."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [pid, *map(int, f.read().split())]


def test_the_warmup_worker_yields_the_cpu_to_invalidations(start_proc):
    """The Procfile's `warmup` worker and its pool run PREWARM_WARMUP_NICE (10) lower than
    us; a worker that also consumes invalidations keeps our priority."""
    import os

    ours = os.getpriority(os.PRIO_PROCESS, 0)
    warmup = start_proc("worker-warmup", celery_argv("warmup", 2))
    both = start_proc("worker-both", celery_argv("invalidate,warmup", 1))
    warmup_family = _family(warmup.pid)
    assert len(warmup_family) == 3  # the main process and its two children
    assert {os.getpriority(os.PRIO_PROCESS, p) for p in warmup_family} == {min(ours + 10, 19)}
    assert {os.getpriority(os.PRIO_PROCESS, p) for p in _family(both.pid)} == {ours}
