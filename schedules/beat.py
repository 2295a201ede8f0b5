"""Beat schedules declared as data and synced idempotently (update_or_create on the name)."""
from __future__ import annotations

from dataclasses import dataclass

from workers.edges import REFRESH_SECONDS  # the seed's re-check interval; edges scan that often

SWEEP_SECONDS = 30
EPG_ROLLOVER_SECONDS = 3600
VERIFY_SECONDS = 300  # one slice of the rolling verification; PREWARM_VERIFY_CYCLE_HOURS sets how many


@dataclass(frozen=True)
class Every:
    name: str
    task: str
    seconds: int
    queue: str = "invalidate"
    description: str = ""


SCHEDULES = [
    Every(
        "prewarm: schedule time-driven rebuilds",
        "prewarm.schedule_due",
        REFRESH_SECONDS,
        description="Queues exact rebuilds (with ETA) for subscriptions and licences that start or end "
        "within the next window, so entitlement flips on time without any write.",
    ),
    Every(
        "prewarm: re-queue stale dirty markers",
        "prewarm.sweep_dirty",
        SWEEP_SECONDS,
        description="Heals a producer that died between claiming an id and publishing its task.",
    ),
    Every(
        "prewarm: resume warm-up jobs",
        "prewarm.warmup_resume",
        SWEEP_SECONDS,
        description="Sends again the warm-up chunks no live worker holds (a worker killed mid-chunk, a broker "
        "that lost its messages) and moves every queued or running warm-up job on.",
    ),
    Every(
        "prewarm: refill a cache that lost its data",
        "prewarm.refill_check",
        SWEEP_SECONDS,
        description="Starts a full warm-up when the mark the last one left in Redis is gone (a cache Redis "
        "restarted without persistence, flushed, or failed over to an empty replica).",
    ),
    Every(
        "prewarm: EPG day rollover",
        "prewarm.epg_rollover",
        EPG_ROLLOVER_SECONDS,
        queue="warmup",
        description="Builds the EPG fragments of the day that enters the kept window in each time zone.",
    ),
    Every(
        "prewarm: rolling cache verification",
        "prewarm.verify_slice",
        VERIFY_SECONDS,
        queue="warmup",
        description="Compares the next slice of profile ids (all of them every PREWARM_VERIFY_CYCLE_HOURS, and "
        "every class and EPG fragment once a cycle) with Postgres and repairs what drifted.",
    ),
]


def sync(schedules=SCHEDULES, using: str = "default") -> int:
    """Create or update each declared schedule; never delete-and-recreate (beat keeps state).

    What the code declares (task, interval, queue, description) is reset to the declaration;
    whether a schedule is enabled is the operator's call: set on creation only.
    """
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for item in schedules:
        interval, _ = IntervalSchedule.objects.using(using).get_or_create(
            every=item.seconds, period=IntervalSchedule.SECONDS
        )
        declared = dict(task=item.task, interval=interval, queue=item.queue, description=item.description)
        PeriodicTask.objects.using(using).update_or_create(
            name=item.name, defaults=declared, create_defaults={**declared, "enabled": True}
        )
    return len(schedules)
