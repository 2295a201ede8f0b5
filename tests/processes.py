"""The tests' child processes: web readiness, and a shutdown that needs SIGKILL fails the test."""
import pytest

from config import web
from tools import procs


def stop_or_fail(children, grace=procs.STOP_GRACE):
    """Stop them all (even after one hangs), then fail naming each that ignored SIGTERM."""
    hung = procs.stop_all(list(children), grace)
    if hung:
        pytest.fail(
            f"shutdown hung: SIGKILL needed after {grace:.0f}s for "
            + "; ".join(f"{proc.name} ({proc.log_path}):\n{proc.tail()}" for proc in hung)
        )


def wait_web(proc, url, timeout=60):
    """Until `url`/healthz answers and every granian worker has started (a worker stopped
    while starting hangs granian: config/web.py), so a test never stops a half-started server."""
    proc.wait_http(url + "/healthz", timeout)
    for n in range(1, web.WORKERS + 1):
        proc.wait_for_output(f"Started worker-{n}\n", timeout)
