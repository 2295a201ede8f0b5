"""Acceptance layer: real worker, relay and web processes against the test servers."""
import os
import subprocess
import sys
from urllib.parse import quote

import pytest

from tests.waiting import ROOT, wait_for


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


class Proc:
    """A real child process (worker or relay) with its output in a log file."""

    def __init__(self, name, argv, env, tmp_path):
        self.name, self.argv, self.env = name, argv, env
        self.log_path = tmp_path / f"{name}.log"
        self.popen = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def output(self):
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text, timeout=30):
        wait_for(lambda: text in self.output(), timeout, message=f"{text!r} in {self.name} log:\n{self.output()}")

    def kill(self, sig=9):
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout=30)

    def stop(self):
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, 15)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def celery_argv(queues="invalidate,warmup", concurrency=2):
    return [
        sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", queues, "-c", str(concurrency),
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
    ]


@pytest.fixture
def start_proc(service_env, tmp_path):
    """Start worker/relay processes for one test; all are stopped afterwards."""
    procs = []

    def start(name, argv=None, **env):
        relay_argv = [sys.executable, "manage.py", "relay", "--poll", "0.2"]
        argv = argv or (celery_argv() if name.startswith("worker") else relay_argv)
        proc = Proc(name, argv, {**service_env, **env}, tmp_path).start()
        procs.append(proc)
        if name.startswith("worker"):
            proc.wait_for_output("ready.")
        else:
            proc.wait_for_output("caught up")
        return proc

    yield start
    for proc in procs:
        proc.stop()




def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/acceptance/" in item.nodeid:
            item.add_marker(pytest.mark.acceptance)
