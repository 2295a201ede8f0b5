"""config.settings: production refuses to start without a real secret; development mode allows the built-in one."""
import os
import subprocess
import sys

import pytest

from config.settings import DEV_SECRET_KEY
from tests.waiting import ROOT

BASE_ENV = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT)}


def manage_check(**env):
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env={**BASE_ENV, **env},
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("env", [{}, {"SECRET_KEY": ""}, {"SECRET_KEY": DEV_SECRET_KEY}])
def test_production_refuses_to_start_without_a_real_secret(env):
    out = manage_check(**env)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        "manage.py: SECRET_KEY must be set in production (or set PREWARM_DEV=1 for local development)"
    ]


def test_a_real_secret_or_development_mode_starts():
    assert manage_check(SECRET_KEY="a-real-secret-from-the-environment").returncode == 0
    assert manage_check(PREWARM_DEV="1").returncode == 0


def test_bad_integer_settings_say_which_variable():
    out = manage_check(PREWARM_DEV="1", PREWARM_PREFETCH="four")
    assert out.returncode != 0 and "PREWARM_PREFETCH must be an integer" in out.stderr


def test_celery_accepts_json_only():
    from django.conf import settings

    assert settings.CELERY_ACCEPT_CONTENT == ["json"]
    assert settings.CELERY_TASK_SERIALIZER == settings.CELERY_RESULT_SERIALIZER == "json"
