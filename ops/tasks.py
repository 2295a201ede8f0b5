"""Celery tasks of warm-up jobs: one chunk (the `warmup` queue), and beat's resume."""
from __future__ import annotations

from celery import shared_task

from workers.app import INVALIDATE_QUEUE, WARMUP_QUEUE
from workers.tasks import RETRY

from . import events, jobs, refill


@shared_task(name=jobs.CHUNK_TASK, queue=WARMUP_QUEUE, **RETRY)
def warmup_chunk(chunk_id: int) -> str:
    """Rebuild one chunk's entries (ops.jobs.execute); a transient error is retried."""
    return jobs.execute(chunk_id)


@shared_task(name="prewarm.warmup_resume", queue=INVALIDATE_QUEUE, **RETRY)
def warmup_resume() -> int:
    """Send again what no live worker holds; a light query, so it does not wait behind chunks."""
    return jobs.resume()


@shared_task(name="prewarm.refill_check", queue=INVALIDATE_QUEUE, **RETRY)
def refill_check() -> int | None:
    """Start a full warm-up when the cache Redis lost its data (ops.refill); a GET and an INFO."""
    return refill.check()


@shared_task(name=events.TASK, queue=INVALIDATE_QUEUE, **RETRY)
def event_warmup(event_id: int) -> int | None:
    """An event's clocked schedule fired: submit its warm-up job; returns the job id."""
    job = events.fire(event_id)
    return job.pk if job is not None else None
