"""workers.watchdog: a process whose Celery shutdown wedges after an unrecoverable error
exits by itself, so a supervisor can restart it."""
import logging
import subprocess
import sys

from tests.waiting import ROOT
from workers.watchdog import ExitAfterUnrecoverable

WEDGED = """
import logging, time
from workers import watchdog
watchdog.install(after=0.5)
logging.getLogger("celery.worker").critical("Unrecoverable error: %r", ValueError("x"))
time.sleep(60)  # Celery's warm shutdown, never ending
"""


def test_a_wedged_worker_exits_with_celerys_failure_code():
    out = subprocess.run([sys.executable, "-c", WEDGED], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1, out.stderr


def test_other_critical_records_arm_nothing():
    fired = []
    handler = ExitAfterUnrecoverable(after=0.01, exit=fired.append)
    def record(msg):
        return logging.LogRecord("celery.worker", logging.CRITICAL, __file__, 1, msg, ("x",), None)

    handler.handle(record("Something else"))
    assert handler.timer is None and fired == []
    handler.handle(record("Unrecoverable error: %r"))
    handler.timer.join(2)
    assert fired == [1]
