"""Warm-up jobs: submit a scope, send its chunks a few at a time, record each chunk's end,
cancel, and resume what no live worker holds. Postgres keeps the state (ops.models).

A chunk goes pending -> sent (a task in the broker) -> running (a worker's lease) -> done.
At most WINDOW chunks of a job are sent or running: each chunk that ends sends the next,
so a job never floods the `warmup` queue and a cancel stops it within a chunk. A chunk
runs again when its message was lost (sent PREWARM_WARMUP_SENT_STALE_SECONDS ago and not
started: a broker restart) or its worker died (its lease, PREWARM_WARMUP_LEASE_SECONDS,
passed): entries are versioned writes, so a second run is harmless, and only the first
end of a chunk counts in the job's progress. A run that meets a transient error (Redis or
Postgres away) gives its chunk back uncounted, so an outage never uses up its attempts.

Locks: the job's row first, then its chunks' rows, everywhere (deadlocks otherwise: a
cancel against a chunk's start). Taking the job's row also serializes a job's chunk ends
and beat's resume, so a chunk brought back by resume cannot be one that just ended.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from core import keys, redis_conn, selectors, services
from workers.app import WARMUP_QUEUE, app
from workers.tasks import TRANSIENT

from . import plan, work
from .models import ACTIVE, ChunkState, JobState, WarmupChunk, WarmupJob
from .scope import BadScope, Scope

log = logging.getLogger("prewarm.warmup")

CHUNK_TASK = "prewarm.warmup_chunk"  # ops.tasks.warmup_chunk
WINDOW = 3  # chunks of one job sent or running at once: enough for 2 warm-up processes, one waiting
MAX_ATTEMPTS = 5  # runs of one chunk before it counts as failed


def _lease() -> timedelta:
    return timedelta(seconds=settings.PREWARM_WARMUP_LEASE_SECONDS)


def _sent_stale() -> timedelta:
    return timedelta(seconds=settings.PREWARM_WARMUP_SENT_STALE_SECONDS)


def resolve(scope: Scope, now=None) -> dict:
    """The scope's targets as ids and days, fixed when the job is made (a rename during the
    job changes nothing). Raises BadScope for unknown codes or days nobody keeps."""
    now = now or selectors.db_now()
    resolved: dict = {"classes": scope.all or bool(scope.regions), "region_ids": None, "profile_ids": None,
                      "profiles": scope.all or bool(scope.regions or scope.profiles), "days": None,
                      "epg": scope.all or bool(scope.epg_dates)}
    if scope.regions:
        from core.models import Region

        found = dict(Region.objects.filter(code__in=scope.regions).values_list("code", "id"))
        unknown = sorted(set(scope.regions) - found.keys())
        if unknown:
            raise BadScope(f"unknown region code(s): {', '.join(unknown)}")
        resolved["region_ids"] = sorted(found.values())
    if scope.profiles:
        resolved["profile_ids"] = list(scope.profiles)
        if resolved["region_ids"] is None:
            resolved["region_ids"] = []
    if scope.epg_dates:
        kept = {day.isoformat() for _, day in services.epg_windows(now)}
        outside = sorted(set(scope.epg_dates) - kept)
        if outside:
            window = f"{min(kept)} to {max(kept)}" if kept else "none: no region has a time zone"
            raise BadScope(f"epg_dates outside the kept days ({window}): {', '.join(outside)}")
        resolved["days"] = list(scope.epg_dates)
    return resolved


def _chunks(resolved: dict, now) -> list[plan.ChunkSpec]:
    counts = {}
    if resolved["profiles"]:
        counts = selectors.profile_span_counts(plan.SPAN, resolved["region_ids"], resolved["profile_ids"])
    regions = 0
    if resolved["classes"]:
        ids = resolved["region_ids"]
        regions = len(ids) if ids is not None else len(selectors.region_heads())
    per_channel = 0
    if resolved["epg"]:
        windows = services.epg_windows(now)
        days = set(resolved["days"] or [])
        per_channel = len([w for w in windows if not days or w[1].isoformat() in days])
    return plan.chunks(profile_counts=counts, region_count=regions,
                       channel_ids=selectors.channel_ids() if per_channel else [], fragments_per_channel=per_channel)


def submit(scope: Scope, created_by: str = "", *, send: bool = True, event=None) -> tuple[WarmupJob, bool]:
    """The job for `scope`: a new one (True), or the one already queued or running (False).
    `send`: hand its first chunks to the workers (not when the caller runs them itself).
    `event`: the event warm-up that asked (ops.events); a running job it joins is linked too."""
    if (running := _active(scope)) is not None:
        if event is not None and running.event_id is None:
            WarmupJob.objects.filter(pk=running.pk, event__isnull=True).update(event=event)
        return running, False
    now = selectors.db_now()
    resolved = resolve(scope, now)
    specs = _chunks(resolved, now)
    try:
        with transaction.atomic():
            job = WarmupJob.objects.create(
                scope=scope.as_dict(), scope_key=scope.key, resolved=resolved, created_by=created_by[:64], event=event,
                total=sum(s.planned for s in specs),
            )
            WarmupChunk.objects.bulk_create(
                [WarmupChunk(job=job, kind=s.kind, lo=s.lo, hi=s.hi, planned=s.planned) for s in specs],
                batch_size=1000,
            )
            if not specs:
                _finish_job(job.pk)
            if send:
                transaction.on_commit(lambda: pump(job.pk))
    except IntegrityError:
        if (running := _active(scope)) is not None:  # submitted twice at once: the other won
            return running, False
        raise
    job.refresh_from_db()
    if scope.all:
        mark_filled(job.pk)
    return job, True


def mark_filled(job_id: int) -> None:
    """Leave the mark a full warm-up leaves (ops.refill looks for it). Set when the job
    starts, not when it ends: a Redis that restarts mid-job takes the mark with it, and
    the next check starts another. Best effort: without it, that check starts the job again."""
    try:
        redis_conn.client().set(keys.filled_key(), job_id)
    except redis.RedisError as exc:
        log.warning("could not leave the full warm-up's mark (ops.refill will start another): %s", exc)


def _active(scope: Scope) -> WarmupJob | None:
    return WarmupJob.objects.filter(scope_key=scope.key, state__in=ACTIVE).first()


def pump(job_id: int) -> int:
    """Send pending chunks until WINDOW of the job are sent or running; returns how many."""
    with transaction.atomic():
        job = WarmupJob.objects.select_for_update().filter(pk=job_id, state__in=ACTIVE).first()
        if job is None:
            return 0
        busy = job.chunks.filter(state__in=[ChunkState.SENT, ChunkState.RUNNING]).count()
        picked = list(job.chunks.filter(state=ChunkState.PENDING).values_list("pk", flat=True)[: max(0, WINDOW - busy)])
        if picked:
            WarmupChunk.objects.filter(pk__in=picked).update(state=ChunkState.SENT, sent_at=timezone.now())
            transaction.on_commit(lambda: _send(picked))
    return len(picked)


def _send(chunk_ids: list[int]) -> None:
    """Best effort: a chunk whose message the broker refused stays sent, and beat's resume
    sends it again after PREWARM_WARMUP_SENT_STALE_SECONDS (an API call still succeeds)."""
    for n, pk in enumerate(chunk_ids):
        try:
            app.send_task(CHUNK_TASK, (pk,), queue=WARMUP_QUEUE)
        except Exception as exc:
            log.warning("could not send %d warm-up chunks (resume sends them later): %s", len(chunk_ids) - n, exc)
            return


def _lock_job(job_id: int) -> WarmupJob | None:
    return WarmupJob.objects.select_for_update().filter(pk=job_id).first()


@dataclass(frozen=True)
class Started:
    chunk: WarmupChunk
    resolved: dict


def start_chunk(chunk_id: int) -> Started | None:
    """Take the chunk's lease, or None when there is nothing to do: done, its job ended, or
    a live run holds it (a second message for it: resume re-sent a slow one)."""
    job_id = WarmupChunk.objects.filter(pk=chunk_id).values_list("job_id", flat=True).first()
    if job_id is None:
        return None
    with transaction.atomic():
        job = _lock_job(job_id)
        chunk = WarmupChunk.objects.select_for_update().get(pk=chunk_id)
        now = timezone.now()
        if job is None or chunk.state in (ChunkState.DONE, ChunkState.FAILED, ChunkState.SKIPPED):
            return None
        if chunk.state == ChunkState.RUNNING and chunk.lease_until is not None and chunk.lease_until > now:
            return None
        if job.state not in ACTIVE:
            chunk.state = ChunkState.SKIPPED
            chunk.save(update_fields=["state"])
            return None
        chunk.state, chunk.attempts, chunk.lease_until = ChunkState.RUNNING, chunk.attempts + 1, now + _lease()
        chunk.save(update_fields=["state", "attempts", "lease_until"])
        if job.state == JobState.QUEUED:
            WarmupJob.objects.filter(pk=job_id).update(state=JobState.RUNNING, started_at=now)
        return Started(chunk, job.resolved)


def release(chunk: WarmupChunk) -> None:
    """A run that met a transient error gives the chunk back, sent and its attempt uncounted:
    Celery's retry takes it, or beat's resume sends it again if the retry never comes. With
    Postgres itself away this fails too; the lease then runs out and resume takes over."""
    try:
        with transaction.atomic():
            _lock_job(chunk.job_id)
            WarmupChunk.objects.filter(pk=chunk.pk, state=ChunkState.RUNNING, attempts=chunk.attempts).update(
                state=ChunkState.SENT, sent_at=timezone.now(), lease_until=None, attempts=F("attempts") - 1
            )
    except Exception as exc:
        log.warning("could not give back warm-up chunk %s: %s", chunk.pk, exc)


def execute(chunk_id: int, *, send_next: bool = True) -> str:
    """Run one chunk: take its lease, rebuild, record the end; "skipped", "done" or "failed".
    A transient error (Redis, Postgres) propagates, for the caller to retry; any other fails
    the chunk for good and the job goes on with the rest."""
    started = start_chunk(chunk_id)
    if started is None:
        return "skipped"
    chunk = started.chunk
    try:
        counts = work.run(chunk.kind, chunk.lo, chunk.hi, started.resolved)
    except TRANSIENT:
        release(chunk)
        raise
    except Exception as exc:
        log.exception("warm-up chunk %s failed", chunk)
        fail_chunk(chunk, f"{type(exc).__name__}: {exc}", send_next=send_next)
        return "failed"
    finish_chunk(chunk, counts.done, counts.written, counts.refused, send_next=send_next)
    return "done"


def claim_pending(job_id: int) -> int | None:
    """A chunk of the job that no run holds (pending, sent, or a dead run's), marked sent:
    for a caller that runs chunks itself (`warm --inline`). A sent chunk counts as free: a
    worker that has its message too finds it running and skips it (start_chunk)."""
    now = timezone.now()
    free = Q(state__in=[ChunkState.PENDING, ChunkState.SENT]) | Q(state=ChunkState.RUNNING, lease_until__lt=now)
    with transaction.atomic():
        chunk = (
            WarmupChunk.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(free, job_id=job_id, job__state__in=ACTIVE)
            .order_by("id")
            .first()
        )
        if chunk is None:
            return None
        WarmupChunk.objects.filter(pk=chunk.pk).update(state=ChunkState.SENT, sent_at=timezone.now())
        return chunk.pk


def finish_chunk(chunk: WarmupChunk, done: int, written: int, refused: int, *, send_next: bool = True) -> None:
    """Record the chunk's end once (a duplicate run's end changes nothing), then send the next."""
    with transaction.atomic():
        _lock_job(chunk.job_id)
        ended = WarmupChunk.objects.filter(pk=chunk.pk, state__in=[ChunkState.SENT, ChunkState.RUNNING]).update(
            state=ChunkState.DONE, done=done, written=written, refused=refused, lease_until=None
        )
        if ended:
            # The total was an estimate made at submit time: correct it by what the chunk found.
            WarmupJob.objects.filter(pk=chunk.job_id).update(
                done=F("done") + done, written=F("written") + written, refused=F("refused") + refused,
                total=F("total") + done - chunk.planned,
            )
            _finish_job(chunk.job_id)
    if send_next:
        pump(chunk.job_id)


def fail_chunk(chunk: WarmupChunk, error: str, *, send_next: bool = True) -> None:
    """A chunk that cannot run (an error that is not transient, or MAX_ATTEMPTS runs); not
    when another run has taken it since (its attempts moved)."""
    with transaction.atomic():
        _lock_job(chunk.job_id)
        ended = WarmupChunk.objects.filter(
            pk=chunk.pk, state__in=[ChunkState.PENDING, ChunkState.SENT, ChunkState.RUNNING], attempts=chunk.attempts
        ).update(state=ChunkState.FAILED, error=error[:2000], lease_until=None)
        if ended:
            WarmupJob.objects.filter(pk=chunk.job_id).update(
                failed=F("failed") + chunk.planned, error=error[:2000]
            )
            _finish_job(chunk.job_id)
    if send_next:
        pump(chunk.job_id)


def _finish_job(job_id: int) -> None:
    """Close the job when no chunk is left to run: failed if any chunk failed, else done."""
    open_chunks = Q(state__in=[ChunkState.PENDING, ChunkState.SENT, ChunkState.RUNNING])
    if WarmupChunk.objects.filter(open_chunks, job_id=job_id).exists():
        return
    failed = WarmupChunk.objects.filter(job_id=job_id, state=ChunkState.FAILED).exists()
    now = timezone.now()
    WarmupJob.objects.filter(pk=job_id, state__in=ACTIVE).update(
        state=JobState.FAILED if failed else JobState.DONE,
        finished_at=now,
        started_at=Coalesce("started_at", Value(now)),
    )


def cancel(job: WarmupJob) -> bool:
    """Stop a queued or running job: chunks not started are skipped, a running one ends."""
    with transaction.atomic():
        if not WarmupJob.objects.filter(pk=job.pk, state__in=ACTIVE).update(
            state=JobState.CANCELLED, finished_at=timezone.now()
        ):
            return False
        job.chunks.filter(state__in=[ChunkState.PENDING, ChunkState.SENT]).update(state=ChunkState.SKIPPED)
    return True


def _unheld(now) -> Q:
    """Chunks whose message was lost, or whose run died."""
    return Q(state=ChunkState.SENT, sent_at__lt=now - _sent_stale()) | Q(state=ChunkState.RUNNING, lease_until__lt=now)


def resume() -> int:
    """Send again the chunks no live worker holds (lost messages, dead runs), fail those that
    ran MAX_ATTEMPTS times, and pump every active job; returns chunks sent again (beat)."""
    sent = 0
    for job_id in WarmupJob.objects.filter(state__in=ACTIVE).values_list("pk", flat=True):
        sent += _resume_job(job_id)
        pump(job_id)
    return sent


def _resume_job(job_id: int) -> int:
    with transaction.atomic():
        if _lock_job(job_id) is None:
            return 0
        # Under the job's lock, and each row locked as read: a chunk that ended meanwhile
        # is no longer unheld when its row is read again, and is left alone.
        lost = list(WarmupChunk.objects.select_for_update().filter(_unheld(timezone.now()), job_id=job_id))
        for chunk in lost:
            if chunk.attempts >= MAX_ATTEMPTS:
                fail_chunk(chunk, f"gave up after {chunk.attempts} runs (a worker died or the chunk hung each time)",
                           send_next=False)
        again = [c.pk for c in lost if c.attempts < MAX_ATTEMPTS]
        if again:
            WarmupChunk.objects.filter(pk__in=again).update(state=ChunkState.SENT, sent_at=timezone.now())
            log.warning("re-sending %d warm-up chunks of job %s that no worker holds", len(again), job_id)
            transaction.on_commit(lambda: _send(again))
    return len(again)


def progress(job: WarmupJob, now=None) -> dict:
    """The job as the API and the CLI show it: counts, rate (entries/s) and ETA."""
    now = now or timezone.now()
    elapsed = ((job.finished_at or now) - job.started_at).total_seconds() if job.started_at else 0.0
    rate = job.done / elapsed if elapsed > 0 else 0.0
    left = max(0, job.total - job.done - job.failed)
    eta = round(left / rate, 1) if rate and job.state in ACTIVE else None
    stamp = lambda t: t.isoformat() if t else None  # noqa: E731
    return {
        "id": job.pk, "scope": job.scope, "state": job.state, "total": job.total, "done": job.done,
        "failed": job.failed, "written": job.written, "refused": job.refused, "rate": round(rate, 1),
        "eta_seconds": eta, "elapsed_seconds": round(elapsed, 3), "created_by": job.created_by, "error": job.error,
        "created_at": stamp(job.created_at), "started_at": stamp(job.started_at), "finished_at": stamp(job.finished_at),
    }



def active_totals() -> dict[str, int]:
    """Over the queued and running jobs: how many, and their entries (for /metrics)."""
    from django.db.models import Count, Sum

    agg = WarmupJob.objects.filter(state__in=ACTIVE).aggregate(
        jobs=Count("id"), total=Sum("total"), done=Sum("done"), failed=Sum("failed"), refused=Sum("refused")
    )
    return {name: int(value or 0) for name, value in agg.items()}
