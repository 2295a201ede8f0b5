"""Acceptance layer: real worker, relay and web processes against the test servers."""
import os
import sys
from urllib.parse import quote

import pytest

from tests.processes import celery_argv, stop_or_fail
from tests.waiting import ROOT
from tools import procs


@pytest.fixture(scope="session")
def service_env(django_db_setup):
    """Environment for worker and relay processes: the test database, this key prefix."""
    from django.conf import settings
    from django.db import connection

    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="") + (":" + quote(s["PASSWORD"], safe="") if s["PASSWORD"] else "")
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        PREWARM_KEY_PREFIX=settings.PREWARM_KEY_PREFIX,
        PREWARM_DEV="1",
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="config.settings",  # the product's settings, as deployed
    )
    return env


@pytest.fixture
def start_proc(service_env, tmp_path):
    """Start worker/relay processes for one test; all are stopped afterwards, and a process
    that does not stop on SIGTERM within the grace period fails the test."""
    started = []

    def start(name, argv=None, *, ready=None, **env):
        relay_argv = [sys.executable, "manage.py", "relay", "--poll", "0.2"]
        argv = argv or (celery_argv() if name.startswith("worker") else relay_argv)
        proc = procs.spawn(name, argv, tmp_path / f"{name}.log", cwd=ROOT, env={**service_env, **env})
        started.append(proc)
        proc.wait_for_output(ready or ("ready." if name.startswith("worker") else "caught up"))
        return proc

    yield start
    stop_or_fail(started)


@pytest.fixture
def stack(fault_pg, tmp_path):
    """The whole deployment on the module's `fault_pg` (tests/acceptance/stack.py), stopped after."""
    from .faults import secrets
    from .stack import Stack

    deployment = Stack(fault_pg, tmp_path, secrets())
    try:
        yield deployment.start()
    finally:
        deployment.stop()


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/acceptance/" in item.nodeid:
            item.add_marker(pytest.mark.acceptance)
