"""The tests' child processes: web readiness, and a shutdown that needs SIGKILL fails the test."""
import sys

import pytest

from config import web
from tests.waiting import ROOT
from tools import procs


def celery_argv(queues="invalidate,warmup", concurrency=2, pool="prefork"):
    """A worker as the Procfile runs one, minus the cluster chatter tests do not need."""
    return [
        sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", queues, "-P", pool, "-c", str(concurrency),
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
    ]


def procfile() -> dict[str, str]:
    """The Procfile's processes: name -> command line."""
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            entries[name.strip()] = command.strip()
    return entries


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


class WebServer:
    """`python -m config.web` (granian, as the Procfile runs it) on a free port."""

    def __init__(self, env, log_path, target=web.TARGET):
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**env, "PREWARM_LOG_LEVEL": "WARNING", "HOST": "127.0.0.1", "PORT": str(self.port)}
        self.proc = procs.spawn("web", [sys.executable, "-m", "config.web", target], log_path, cwd=ROOT, env=env)
        try:
            wait_web(self.proc, self.url)
        except procs.ProcessError:
            self.proc.kill()
            raise
