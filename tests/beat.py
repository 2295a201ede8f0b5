"""A real `celery beat` for tests: the DatabaseScheduler with the schedules `migrate` made,
chosen ones shortened to every second and the rest paused."""
import sys

from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

from schedules import beat

BEAT = [sys.executable, "-m", "celery", "-A", "workers", "beat", "--loglevel", "INFO"]


def run_every_second(tasks):
    """These declared schedules run every second, the others are paused (the rolling
    verification would repair what they must)."""
    beat.sync()
    second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    assert PeriodicTask.objects.filter(task__in=tasks).update(interval=second) == len(tasks)
    PeriodicTask.objects.filter(task__in=[s.task for s in beat.SCHEDULES]).exclude(task__in=tasks).update(
        enabled=False
    )
    PeriodicTasks.update_changed()
