"""Warm-up jobs against real Postgres and Redis, chunks run in this process: what a scope
builds, progress and refusals, one job per scope, cancel, and beat's resume."""
import base64
import json
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from core import keys, services
from core.models import Profile
from ops import jobs, plan
from ops.models import ChunkState, JobState, WarmupChunk, WarmupJob
from ops.scope import BadScope, Scope
from tests.queues import purge
from tests.rows import bulk_profiles
from tests.sends import patch_send_task
from workers.app import WARMUP_QUEUE, app

pytestmark = pytest.mark.django_db(transaction=True)


def cached(client, ids):
    pipe = client.pipeline(transaction=False)
    for pk in ids:
        pipe.exists(keys.profile_key(pk))
    return sum(pipe.execute())


def sent_chunks():
    """Chunk ids of the warm-up tasks waiting in the broker's warmup queue."""
    with app.connection_for_write() as conn:
        raw = conn.default_channel.client.lrange(WARMUP_QUEUE, 0, -1)
    out = []
    for item in raw:
        message = json.loads(item)
        assert message["headers"]["task"] == jobs.CHUNK_TASK
        out.append(json.loads(base64.b64decode(message["body"]))[0][0])
    return sorted(out)


def run_all(job):
    """Run the job here: first what was handed to the workers (as one would), then the rest."""
    for chunk_id in sent_chunks():
        jobs.execute(chunk_id, send_next=False)
    purge(WARMUP_QUEUE)
    while (chunk_id := jobs.claim_pending(job.pk)) is not None:
        jobs.execute(chunk_id, send_next=False)
    job.refresh_from_db()
    return jobs.progress(job)


@pytest.fixture
def profiles(catalogue):
    us = Profile.objects.bulk_create([Profile(region=catalogue["us"], isp=catalogue["cheap"]) for _ in range(100)])
    return bulk_profiles(catalogue, 2 * plan.SPAN + 10, plan="premium") + [p.pk for p in us]


def test_warm_all_builds_every_profile_class_and_fragment(profiles, redis_client, purge_queues):
    job, created = jobs.submit(Scope(all=True), send=False)
    assert created and job.state == JobState.QUEUED
    kinds = list(job.chunks.values_list("kind", flat=True))
    assert kinds[0] == "classes" and kinds.count("profiles") >= 3 and "epg" in kinds
    doc = run_all(job)
    assert doc["state"] == "done" and doc["failed"] == 0 and doc["done"] == doc["total"]
    assert cached(redis_client, profiles) == len(profiles)
    assert redis_client.exists(keys.class_key(redis_client.hget(keys.profile_key(profiles[0]), "class").decode()))
    assert redis_client.keys(keys.prefix() + ":epg:*")
    assert doc["written"] >= len(profiles) and doc["refused"] == 0 and doc["rate"] > 0 and doc["eta_seconds"] is None


def test_entries_redis_holds_newer_are_counted_as_refused(profiles, redis_client):
    """An invalidation that landed first wins; the job says so instead of "warmed"."""
    services.rebuild_profiles(profiles[:3])
    for pk in profiles[:3]:
        redis_client.hset(keys.profile_key(pk), "version", 10**12)
    out = StringIO()
    call_command("warm", "--profiles", *map(str, profiles[:5]), "--inline", "--jobs", "1", stdout=out)
    assert "5 of 5 entries" in out.getvalue() and "2 written, 3 already newer in Redis" in out.getvalue()


def test_one_job_per_scope_while_it_runs(profiles, purge_queues):
    job, created = jobs.submit(Scope(regions=("EU-WEST",)))
    again, created_again = jobs.submit(Scope(regions=("EU-WEST",)))
    assert created and not created_again and again.pk == job.pk
    other, created_other = jobs.submit(Scope(regions=("US-EAST",)))
    assert created_other and other.pk != job.pk
    # The first chunks were handed to the workers, WINDOW at most per job.
    expected = sum(min(jobs.WINDOW, j.chunks.count()) for j in (job, other))
    assert len(sent_chunks()) == expected and job.chunks.count() > jobs.WINDOW
    run_all(job)
    _, created_after = jobs.submit(Scope(regions=("EU-WEST",)))
    assert created_after  # a finished job does not hold its scope


def test_a_region_scope_builds_only_that_region(profiles, redis_client, catalogue):
    job, _ = jobs.submit(Scope(regions=("US-EAST",)), send=False)
    doc = run_all(job)
    us = list(Profile.objects.filter(region=catalogue["us"]).values_list("id", flat=True))
    assert cached(redis_client, us) == len(us) == 100 and cached(redis_client, profiles) == 100
    assert doc["done"] == 101  # the profiles and the region's classes
    assert not redis_client.keys(keys.prefix() + ":epg:*")


def test_epg_dates_build_those_days_only(catalogue, redis_client):
    today = services.selectors.db_now().astimezone(timezone.get_default_timezone()).date()
    job, _ = jobs.submit(Scope(epg_dates=(today.isoformat(),)), send=False)
    doc = run_all(job)
    days = {k.decode().split("|")[1].split("}")[0] for k in redis_client.keys(keys.prefix() + ":epg:*")}
    assert doc["state"] == "done" and doc["done"] > 0 and days == {today.isoformat()}


@pytest.mark.parametrize(
    "scope, message",
    [
        (Scope(regions=("NOWHERE",)), "unknown region code(s): NOWHERE"),
        (Scope(epg_dates=("2001-01-01",)), "epg_dates outside the kept days"),
    ],
)
def test_a_scope_naming_nothing_kept_is_refused(catalogue, scope, message):
    with pytest.raises(BadScope, match=message.replace("(", r"\(").replace(")", r"\)")):
        jobs.submit(scope)


def test_cancel_skips_what_has_not_started(profiles, purge_queues):
    job, _ = jobs.submit(Scope(all=True))
    first = sent_chunks()[0]
    assert jobs.cancel(job) and not jobs.cancel(job)
    assert jobs.execute(first) == "skipped"  # a chunk already in the broker runs no more
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED and job.done == 0
    assert set(job.chunks.values_list("state", flat=True)) == {ChunkState.SKIPPED}


def test_resume_sends_lost_chunks_again_and_counts_a_chunk_once(profiles, purge_queues, settings):
    job, _ = jobs.submit(Scope(all=True))
    lost, dead, *_ = sent_chunks()
    purge(WARMUP_QUEUE)  # the broker lost both messages ...
    started = jobs.start_chunk(dead)  # ... after a worker took one and died
    long_ago = timezone.now() - timedelta(seconds=settings.PREWARM_WARMUP_SENT_STALE_SECONDS + 1)
    WarmupChunk.objects.filter(pk=lost).update(sent_at=long_ago)
    WarmupChunk.objects.filter(pk=dead).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert jobs.resume() == 2 and sent_chunks() == [lost, dead]
    assert jobs.execute(dead, send_next=False) == "done"
    done = job.chunks.get(pk=dead).done
    jobs.finish_chunk(started.chunk, 999, 0, 0)  # the dead run's late end changes nothing
    job.refresh_from_db()
    assert job.done == done


def test_a_chunk_that_keeps_dying_fails_the_job_which_finishes_the_rest(profiles, purge_queues):
    job, _ = jobs.submit(Scope(regions=("US-EAST",)))
    chunk = job.chunks.order_by("id").first()
    WarmupChunk.objects.filter(pk=chunk.pk).update(
        state=ChunkState.RUNNING, attempts=jobs.MAX_ATTEMPTS, lease_until=timezone.now() - timedelta(seconds=1)
    )
    jobs.resume()
    doc = run_all(job)
    assert doc["state"] == "failed" and doc["failed"] == chunk.planned and "gave up after" in doc["error"]
    assert doc["done"] == doc["total"] - doc["failed"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--region", "NOWHERE"], "unknown region code(s): NOWHERE"),
        (["--all", "--inline", "--jobs", "0"], "--jobs must be"),
        (["--epg-dates", "2001-02-30"], "epg_dates must hold only YYYY-MM-DD dates"),
        (["--follow", "999999"], "no warm-up job 999999"),
        (["--cancel", "999999"], "no warm-up job 999999"),
    ],
)
def test_bad_input_is_a_one_line_error(catalogue, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("warm", *args, stdout=StringIO())


def test_detach_prints_the_job_id(catalogue, purge_queues):
    out = StringIO()
    call_command("warm", "--region", "EU-WEST", "--detach", stdout=out)
    job_id = int(out.getvalue().strip())
    assert jobs.progress(WarmupJob.objects.get(pk=job_id))["state"] == "queued"


def test_the_admin_shows_jobs_with_progress_and_cancels(profiles, admin_client, purge_queues):
    job, _ = jobs.submit(Scope(regions=("EU-WEST",)))
    page = admin_client.get("/admin/ops/warmupjob/")
    assert page.status_code == 200 and b"<progress" in page.content
    detail = admin_client.get(f"/admin/ops/warmupjob/{job.pk}/change/")
    assert detail.status_code == 200 and b"profiles" in detail.content
    admin_client.post("/admin/ops/warmupjob/", {"action": "cancel", "_selected_action": [job.pk]})
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED


def test_the_freshness_page_shows_lag_hits_drift_backlog_and_jobs(profiles, admin_client, client, purge_queues):
    from workers import tasks

    tasks.rebuild.apply(args=("profile", profiles[:3], time.time() - 0.7))  # three changes, 0.7 s behind
    jobs.submit(Scope(regions=("EU-WEST",)))
    page = admin_client.get("/admin/freshness/")
    html = page.content.decode()
    assert page.status_code == 200, html[:500]
    for section in ('id="hits"', 'id="lag"', 'id="drift"', 'id="waiting"', 'id="jobs"'):
        assert section in html
    assert "<svg" in html and "<rect" in html and "≤ 1000 ms" in html  # the 0.7 s lags' bucket
    assert "queue invalidate" in html and "<progress" in html
    assert "Cache freshness" in admin_client.get("/admin/").content.decode()  # linked from the index
    assert client.get("/admin/freshness/").status_code == 302  # staff only: to the login page


def test_resume_leaves_alone_a_chunk_that_ends_while_it_looks(profiles, purge_queues, settings):
    """A chunk that looked lost to beat's resume but ended meanwhile is not sent again (its
    progress would count twice): resume re-reads each row under its lock."""
    import threading

    import psycopg
    from django.db import connection, connections

    job, _ = jobs.submit(Scope(all=True))
    chunk_id = sent_chunks()[0]
    purge(WARMUP_QUEUE)
    long_ago = timezone.now() - timedelta(seconds=settings.PREWARM_WARMUP_SENT_STALE_SECONDS + 1)
    WarmupChunk.objects.filter(pk=chunk_id).update(sent_at=long_ago)
    # A finisher on another connection: the chunk's row updated, not yet committed.
    other = psycopg.connect(**{k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"})
    other.execute("UPDATE ops_warmupchunk SET state = 'done' WHERE id = %s", [chunk_id])
    def beat_resume():
        try:
            jobs.resume()
        finally:
            connections.close_all()  # this thread's own

    resumed = threading.Thread(target=beat_resume)
    resumed.start()
    time.sleep(0.5)  # resume now waits on the row
    other.commit()
    other.close()
    resumed.join(30)
    assert WarmupChunk.objects.get(pk=chunk_id).state == ChunkState.DONE
    assert chunk_id not in sent_chunks()


def test_a_transient_error_gives_the_chunk_back_uncounted(profiles, purge_queues, monkeypatch):
    """Redis away for a moment: the run gives its chunk back for Celery's retry, and the
    outage does not use up the chunk's attempts."""
    import redis

    from ops import work

    job, _ = jobs.submit(Scope(regions=("US-EAST",)))
    chunk_id = sent_chunks()[0]
    with monkeypatch.context() as m:
        m.setattr(work, "run", lambda *a: (_ for _ in ()).throw(redis.ConnectionError("Redis away")))
        for _ in range(jobs.MAX_ATTEMPTS + 1):
            with pytest.raises(redis.ConnectionError):
                jobs.execute(chunk_id, send_next=False)
    chunk = WarmupChunk.objects.get(pk=chunk_id)
    assert (chunk.state, chunk.attempts, chunk.lease_until) == (ChunkState.SENT, 0, None)
    assert jobs.execute(chunk_id, send_next=False) == "done"


def test_a_second_message_for_a_chunk_a_live_run_holds_is_skipped(profiles, purge_queues):
    job, _ = jobs.submit(Scope(regions=("US-EAST",)))
    chunk_id = sent_chunks()[0]
    assert jobs.start_chunk(chunk_id) is not None
    assert jobs.start_chunk(chunk_id) is None  # resume re-sent a slow chunk: one run at a time
    assert WarmupChunk.objects.get(pk=chunk_id).attempts == 1


def test_inline_runs_take_chunks_sent_to_workers_that_never_came(profiles, purge_queues):
    """`warm --inline` with no warm-up worker: the chunks beat's resume handed to workers are
    run here at once, not after PREWARM_WARMUP_SENT_STALE_SECONDS."""
    job, _ = jobs.submit(Scope(all=True))  # sent: nobody consumes the queue
    doc = run_all_inline(job)
    assert doc["state"] == "done" and doc["done"] == doc["total"]


def run_all_inline(job):
    while (chunk_id := jobs.claim_pending(job.pk)) is not None:
        jobs.execute(chunk_id, send_next=False)
    job.refresh_from_db()
    return jobs.progress(job)


def test_a_job_submitted_while_the_broker_refuses_is_kept_for_resume(profiles, purge_queues, monkeypatch):
    """The job and its chunks are in Postgres: the broker down costs a delay (beat's resume
    sends the chunks again), not an error to the API or the command."""
    from kombu.exceptions import OperationalError

    def refused(*args, **kwargs):
        raise OperationalError("broker down")

    with monkeypatch.context() as m:
        patch_send_task(m, refused)
        job, created = jobs.submit(Scope(regions=("US-EAST",)))
    assert created and set(job.chunks.values_list("state", flat=True)) == {ChunkState.SENT}
