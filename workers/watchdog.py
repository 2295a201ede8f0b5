"""Exit a worker that Celery could not shut down after an unrecoverable error, or (in a pool
without time limits) whose task overran the hard time limit.

Celery logs "Unrecoverable error" and then shuts down warm, which waits for the pool. Seen
here: after the prefork pool's UnpicklingError (README, Status) that warm shutdown never
ends, and the worker lives on consuming nothing. A supervisor (compose's restart policy,
systemd) restarts a process that exits, not one that hangs, so this arms a timer that ends
the process EXIT_AFTER_SECONDS after such an error. Tasks it held are acknowledged late:
the broker gives them back, and their markers are swept. Celery has no hook for this, so
a logging handler on its worker logger is the seam.

The solo and threads pools enforce no time limit (prefork's parent kills an overrunning
child). A task stuck past CELERY_TASK_TIME_LIMIT (a lock, a server that stopped answering)
would hold such a worker for ever, so HardTimeLimit ends the process instead: the same
outcome as prefork's kill (the task lost, its markers swept), and the supervisor restarts it.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

EXIT_AFTER_SECONDS = 30.0  # a warm shutdown's tasks take milliseconds here; chunks a second
EX_FAILURE = 1  # Celery's own exit code for an unrecoverable error


class ExitAfterUnrecoverable(logging.Handler):
    def __init__(self, after: float = EXIT_AFTER_SECONDS, exit: Callable[[int], None] = os._exit):
        super().__init__(level=logging.CRITICAL)
        self.after, self._exit = after, exit
        self.timer: threading.Timer | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.timer is None and str(record.msg).startswith("Unrecoverable error"):
            # os._exit: a clean exit would run the same wedged shutdown again (atexit).
            self.timer = threading.Timer(self.after, self._exit, (EX_FAILURE,))
            self.timer.daemon = True
            self.timer.start()


def install(after: float = EXIT_AFTER_SECONDS) -> ExitAfterUnrecoverable:
    from celery.utils.log import worker_logger

    handler = ExitAfterUnrecoverable(after)
    worker_logger.addHandler(handler)
    return handler


log = logging.getLogger(__name__)


class HardTimeLimit:
    """Ends the process when a task has run past its hard time limit (the message's, else
    `limit` seconds), checked every `every` seconds: task_prerun calls started(),
    task_postrun finished()."""

    def __init__(self, limit: float, every: float = 1.0, exit: Callable[[int], None] = os._exit,
                 clock: Callable[[], float] = time.monotonic):
        self.limit, self.every, self._exit, self._clock = limit, every, exit, clock
        self.deadlines: dict[str, tuple[float, float]] = {}  # task id -> (deadline, its limit)
        self._stop = threading.Event()

    def started(self, task_id: str, limit: float | None = None) -> None:
        limit = limit or self.limit
        self.deadlines[task_id] = (self._clock() + limit, limit)

    def finished(self, task_id: str) -> None:
        self.deadlines.pop(task_id, None)

    def overdue(self) -> list[tuple[str, float]]:
        now = self._clock()
        return [(t, limit) for t, (deadline, limit) in list(self.deadlines.items()) if now > deadline]

    def watch(self) -> None:
        while not self._stop.wait(self.every):
            if late := self.overdue():
                task_id, limit = late[0]
                log.critical("Hard time limit (%gs) exceeded for task %s: the worker exits", limit, task_id)
                self._exit(EX_FAILURE)
                return

    def start(self) -> HardTimeLimit:
        threading.Thread(target=self.watch, name="hard-time-limit", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()


def install_time_limit(limit: float) -> HardTimeLimit:
    """Watch every task of this process (a solo or threads pool) against its hard limit."""
    from celery.signals import task_postrun, task_prerun

    watch = HardTimeLimit(limit).start()

    def started(task_id=None, task=None, **kwargs):
        hard = (getattr(task.request, "timelimit", None) or (None, None))[0] if task is not None else None
        watch.started(task_id, hard)

    task_prerun.connect(started, weak=False)
    task_postrun.connect(lambda task_id=None, **kwargs: watch.finished(task_id), weak=False)
    return watch
