"""Every Procfile process starts on its own once `migrate` has run (no collectstatic, no
seed), as honcho, compose or a platform would start it, stops on SIGTERM, and leaves no
generated file in `git status`."""
import shutil
import subprocess
import time

import pytest

from tests.processes import procfile, stop_or_fail, wait_web
from tests.waiting import ROOT
from tools import procs

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]
READY = {"worker": "ready.", "worker2": "ready.", "warmup": "ready.", "beat": "beat: Starting...", "relay": "caught up"}
SETTLE_S = 2  # a process that fails just after its ready line (a missing table) is caught here


def untracked():
    if shutil.which("git") is None:
        return set()
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                         capture_output=True, text=True)
    return set(out.stdout.splitlines()) if out.returncode == 0 else set()


def test_every_procfile_process_starts_after_migrate_alone(service_env, tmp_path):
    entries = procfile()
    assert set(entries) == {"web", *READY}, "a new Procfile process needs its ready line here"
    before = untracked()
    port = procs.free_port()
    env = {**service_env, "HOST": "127.0.0.1", "PORT": str(port),
           "PREWARM_STATIC_ROOT": str(tmp_path / "never-collected")}
    # As honcho runs them: through the shell, so ${VAR:-default} in a line works.
    started = {name: procs.spawn(name, ["sh", "-c", command], tmp_path / f"{name}.log", cwd=ROOT, env=env)
               for name, command in entries.items()}
    try:
        wait_web(started["web"], f"http://127.0.0.1:{port}")
        for name, marker in READY.items():
            started[name].wait_for_output(marker, timeout=60)
        time.sleep(SETTLE_S)
        for name, proc in started.items():
            assert proc.running(), f"{name} exited:\n{proc.tail()}"
            assert "Traceback" not in proc.output(), f"{name}:\n{proc.tail()}"
    finally:
        stop_or_fail(list(started.values()))
    assert untracked() == before
