"""`manage.py migrate`, run as a user runs it, creates the beat schedules and keeps an operator's pause."""
import subprocess
import sys

from django_celery_beat.models import PeriodicTask

from schedules import beat
from tests.waiting import ROOT


def migrate(env):
    out = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_migrate_creates_the_schedules_and_keeps_a_pause(service_env, transactional_db):
    PeriodicTask.objects.filter(name__startswith="prewarm:").delete()
    migrate(service_env)
    tasks = {t.task: t for t in PeriodicTask.objects.filter(name__startswith="prewarm:")}
    assert set(tasks) == {s.task for s in beat.SCHEDULES}
    assert all(t.enabled for t in tasks.values())
    assert tasks["prewarm.schedule_due"].interval.every == beat.REFRESH_SECONDS

    PeriodicTask.objects.filter(task="prewarm.sweep_dirty").update(enabled=False)
    migrate(service_env)
    assert PeriodicTask.objects.get(task="prewarm.sweep_dirty").enabled is False
