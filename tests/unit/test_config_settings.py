"""config.settings: no process starts without a real secret unless DEBUG; `check --deploy` flags the built-in one."""
import os
import subprocess
import sys

import pytest

from config.settings import DEV_SECRET_KEY
from tests.waiting import ROOT

BASE_ENV = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT)}


def manage_check(*args, **env):
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args], cwd=ROOT, env={**BASE_ENV, **env},
        capture_output=True, text=True, timeout=120,
    )


REFUSED = "manage.py: SECRET_KEY must be set (the built-in development secret is accepted only with PREWARM_DEBUG=1)"


@pytest.mark.parametrize(
    "env",
    [
        {}, {"SECRET_KEY": ""}, {"SECRET_KEY": DEV_SECRET_KEY},
        # Development mode alone is no licence for the public key: anyone could mint ops tokens.
        {"PREWARM_DEV": "1"}, {"PREWARM_DEV": "1", "SECRET_KEY": DEV_SECRET_KEY},
    ],
)
def test_production_refuses_to_start_without_a_real_secret(env):
    out = manage_check(**env)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [REFUSED]


def test_a_real_secret_or_debug_starts():
    assert manage_check(SECRET_KEY="a-real-secret-from-the-environment").returncode == 0
    assert manage_check(PREWARM_DEV="1", SECRET_KEY="a-generated-development-key").returncode == 0
    assert manage_check(PREWARM_DEBUG="1").returncode == 0


def test_check_deploy_fails_on_the_built_in_secret():
    out = manage_check("--deploy", "--fail-level", "ERROR", PREWARM_DEBUG="1")
    assert out.returncode != 0
    assert "prewarm.E001" in out.stderr and "built-in development secret" in out.stderr


def test_the_built_in_secret_check_names_only_the_built_in_key(settings):
    from core.checks import builtin_secret

    assert builtin_secret() == []
    settings.SECRET_KEY = DEV_SECRET_KEY
    assert [e.id for e in builtin_secret()] == ["prewarm.E001"]


def test_bad_integer_settings_say_which_variable():
    out = manage_check(SECRET_KEY="a-real-secret-from-the-environment", PREWARM_PREFETCH="four")
    assert out.returncode != 0 and "PREWARM_PREFETCH must be an integer" in out.stderr


def test_celery_accepts_json_only():
    from django.conf import settings

    assert settings.CELERY_ACCEPT_CONTENT == ["json"]
    assert settings.CELERY_TASK_SERIALIZER == settings.CELERY_RESULT_SERIALIZER == "json"
