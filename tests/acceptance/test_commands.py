"""The documented commands, run as a user runs them (a `manage.py` process), do what the README says."""
import subprocess
import sys

import orjson
import pytest
from django.test import Client
from django_celery_beat.models import PeriodicTask

from api import tokens
from schedules import beat
from tests.waiting import ROOT

pytestmark = pytest.mark.django_db(transaction=True)  # the manage.py process sees only committed rows


def manage(env, *args, ok=True):
    out = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert (out.returncode == 0) == ok, out.stdout + out.stderr
    return out


def migrate(env):
    manage(env, "migrate", "--noinput")


def test_migrate_creates_the_schedules_and_keeps_a_pause(service_env):
    PeriodicTask.objects.filter(name__startswith="prewarm:").delete()
    migrate(service_env)
    tasks = {t.task: t for t in PeriodicTask.objects.filter(name__startswith="prewarm:")}
    assert set(tasks) == {s.task for s in beat.SCHEDULES}
    assert all(t.enabled for t in tasks.values())
    assert tasks["prewarm.schedule_due"].interval.every == beat.REFRESH_SECONDS

    PeriodicTask.objects.filter(task="prewarm.sweep_dirty").update(enabled=False)
    migrate(service_env)
    assert PeriodicTask.objects.get(task="prewarm.sweep_dirty").enabled is False


def test_api_token_prints_tokens_that_the_api_accepts(service_env, warm_world):
    w = warm_world
    viewer = manage(service_env, "api_token", str(w.fan.pk), "--ttl", "120").stdout.strip()
    ops = manage(service_env, "api_token", "0", "--ops").stdout.strip()
    assert (tokens.verify(viewer).profile_id, tokens.verify(viewer).ops) == (w.fan.pk, False)
    assert tokens.verify(ops).ops
    client = Client()
    profile = client.get("/api/v1/me/profile", HTTP_AUTHORIZATION=f"Bearer {viewer}")
    assert profile.status_code == 200 and orjson.loads(profile.content)["id"] == w.fan.pk
    assert client.get("/api/v1/me/profile", HTTP_AUTHORIZATION=f"Bearer {ops}").status_code == 403
    as_ops = {"HTTP_AUTHORIZATION": f"Bearer {ops}"}
    warmups = client.post("/api/v1/ops/warmups", b'{"all": true}', content_type="application/json", **as_ops)
    assert warmups.status_code not in (401, 403)


def test_api_token_refuses_bad_input_in_one_line(service_env):
    for args, message in ((["999999999"], "no profile with id 999999999"), (["1", "--ttl", "0"], "--ttl must be"),
                          (["0", "--ops", "--ttl", "31536000"], "--ttl is at most 86400 s")):
        out = manage(service_env, "api_token", *args, ok=False)
        assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
