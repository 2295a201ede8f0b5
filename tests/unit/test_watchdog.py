"""workers.watchdog: a process whose Celery shutdown wedges after an unrecoverable error
exits by itself, so a supervisor can restart it."""
import logging
import subprocess
import sys
import time

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


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_task_past_its_hard_limit_ends_the_process():
    """Solo and threads pools enforce no time limit: the watchdog does, as prefork's kill would."""
    from workers.watchdog import HardTimeLimit

    clock, exits = Clock(), []
    watch = HardTimeLimit(300, exit=exits.append, clock=clock)
    watch.started("a")  # the configured limit
    watch.started("b", limit=2)  # the message's own
    clock.now += 2.5
    assert watch.overdue() == [("b", 2)]
    watch.finished("b")
    assert watch.overdue() == []
    clock.now += 298
    assert watch.overdue() == [("a", 300)]
    watch.finished("a")
    watch.started("c")
    clock.now += 299
    assert watch.overdue() == [] and exits == []


def test_the_watch_thread_exits_with_celerys_failure_code():
    from workers.watchdog import HardTimeLimit

    clock, exits = Clock(), []
    watch = HardTimeLimit(1, every=0.01, exit=exits.append, clock=clock).start()
    watch.started("stuck")
    clock.now += 5
    for _ in range(500):
        if exits:
            break
        time.sleep(0.01)
    watch.stop()
    assert exits == [1]
