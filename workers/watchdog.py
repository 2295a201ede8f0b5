"""Exit a worker that Celery could not shut down after an unrecoverable error.

Celery logs "Unrecoverable error" and then shuts down warm, which waits for the pool. Seen
here: after the prefork pool's UnpicklingError (README, Status) that warm shutdown never
ends, and the worker lives on consuming nothing. A supervisor (compose's restart policy,
systemd) restarts a process that exits, not one that hangs, so this arms a timer that ends
the process EXIT_AFTER_SECONDS after such an error. Tasks it held are acknowledged late:
the broker gives them back, and their markers are swept. Celery has no hook for this, so
a logging handler on its worker logger is the seam.
"""
from __future__ import annotations

import logging
import os
import threading
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
