"""tools/procs: children in their own group, logs, readiness, and a stop that reports a hang."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import stop_or_fail
from tests.waiting import ROOT, wait_for
from tools import procs

# A child that says it is ready only once its handlers are in place, so a signal sent
# after "ready" is never handled by Python's default action instead.
IGNORES_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
)
SLEEPS = "import time; print('ready', flush=True); time.sleep(60)"


def python(code):
    return [sys.executable, "-c", code]


def alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def spawn(tmp_path):
    """procs.spawn with a log in tmp_path; whatever a test leaves running is killed."""
    started = []

    def start(code, name="child", **kw):
        proc = procs.spawn(name, python(code), tmp_path / f"{name}.log", **kw)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def test_the_child_runs_in_its_own_process_group_with_its_output_in_the_log(spawn):
    proc = spawn("import os, sys; print('out', os.getpgrp(), flush=True); print('err', file=sys.stderr)")
    assert proc.popen.wait(10) == 0
    out = proc.output()
    assert f"out {proc.pid}" in out and "err" in out
    assert os.getpgid(0) != proc.pid


def test_output_shows_only_this_run_of_an_appended_log(spawn):
    spawn("print('first run')", name="same").popen.wait(10)
    second = spawn("print('second run')", name="same", append=True)
    second.popen.wait(10)
    assert second.output() == "second run\n"
    assert "first run" in second.log_path.read_text()


def test_waiting_fails_with_the_log_tail_when_the_child_exits(spawn):
    proc = spawn("import sys; print('boom: bad config', flush=True); sys.exit(3)")
    with pytest.raises(procs.ProcessError, match=r"exited with 3 before 'never' in its log(.|\n)*boom: bad config"):
        proc.wait_for_output("never", timeout=10)


def test_waiting_fails_with_the_log_tail_when_time_runs_out(spawn):
    proc = spawn(SLEEPS)
    started = time.monotonic()
    with pytest.raises(procs.ProcessError, match=r"no 'never' in its log after 0s(.|\n)*ready"):
        proc.wait_for_output("never", timeout=0.3)
    assert time.monotonic() - started < 5
    assert proc.running()


def test_wait_until_returns_once_the_condition_holds(spawn, tmp_path):
    flag = tmp_path / "flag"
    proc = spawn(f"import pathlib, time; time.sleep(0.2); pathlib.Path({str(flag)!r}).touch(); time.sleep(60)")
    proc.wait_until(flag.exists, timeout=10, what="the flag file")
    assert proc.running()


def test_stop_ends_the_whole_group_and_reports_a_clean_shutdown(spawn):
    # The grandchild stays in the group, as granian's or celery's forked workers do.
    proc = spawn(
        "import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        " print('grandchild', c.pid, flush=True); time.sleep(60)"
    )
    proc.wait_for_output("grandchild")
    grandchild = int(proc.output().split()[1])
    assert proc.stop(grace=10) is True
    assert proc.hung is False
    assert proc.popen.returncode == -signal.SIGTERM
    wait_for(lambda: not alive(grandchild), 5, message="the grandchild gone")


def test_a_child_that_ignores_sigterm_makes_stop_report_a_hung_shutdown(spawn):
    proc = spawn(IGNORES_TERM)
    proc.wait_for_output("ready")
    started = time.monotonic()
    assert proc.stop(grace=0.5) is False
    assert proc.hung is True
    assert 0.5 <= time.monotonic() - started < 5
    assert proc.popen.returncode == -signal.SIGKILL


def test_a_group_member_that_outlives_the_leader_is_a_hung_shutdown_too(spawn):
    proc = spawn(
        "import subprocess, sys, time;"
        f" c = subprocess.Popen([sys.executable, '-c', {IGNORES_TERM!r}], stdout=subprocess.PIPE);"
        " c.stdout.readline(); print('grandchild', c.pid, flush=True); time.sleep(60)"
    )
    proc.wait_for_output("grandchild")
    grandchild = int(proc.output().split()[1])
    assert proc.stop(grace=0.5) is False
    assert proc.popen.returncode == -signal.SIGTERM  # the leader went; its child did not
    wait_for(lambda: not alive(grandchild), 5, message="the grandchild killed")


def test_stop_sends_the_chosen_signal(spawn):
    proc = spawn(
        "import signal, sys, time\n"
        "def bye(*_): print('got SIGINT', flush=True); sys.exit(0)\n"
        "signal.signal(signal.SIGINT, bye); print('ready', flush=True); time.sleep(60)",
        stop_signal=signal.SIGINT,
    )
    proc.wait_for_output("ready")
    assert proc.stop(grace=10) is True
    assert proc.popen.returncode == 0 and "got SIGINT" in proc.output()


def test_stopping_a_child_that_already_exited_is_clean(spawn):
    proc = spawn("pass")
    proc.popen.wait(10)
    assert proc.stop() is True


def test_the_parent_death_signal_takes_the_child_down_with_its_parent(tmp_path):
    parent = subprocess.Popen(
        python(
            "import signal, sys, time; from tools import procs;"
            f" p = procs.spawn('c', [sys.executable, '-c', 'import time; time.sleep(60)'], {str(tmp_path / 'c.log')!r},"
            " parent_death_signal=signal.SIGTERM); print(p.pid, flush=True); time.sleep(60)"
        ),
        cwd=ROOT, stdout=subprocess.PIPE,
    )
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.kill()
    parent.wait(10)
    parent.stdout.close()
    wait_for(lambda: not alive(child), 5, message="the child gone with its parent")


def test_free_port_can_be_bound():
    port = procs.free_port()
    with socket.socket() as s:
        s.bind((procs.LOCALHOST, port))


def test_stop_all_signals_every_child_before_waiting_and_returns_the_hung_ones(spawn):
    good, bad = spawn(SLEEPS, name="good"), spawn(IGNORES_TERM, name="bad")
    good.wait_for_output("ready")
    bad.wait_for_output("ready")
    started = time.monotonic()
    assert procs.stop_all([bad, good], grace=0.5) == [bad]
    assert time.monotonic() - started < 3  # one grace period, not one per child
    assert not good.running() and not bad.running()


def test_a_hung_shutdown_fails_the_test_that_started_it(spawn):
    proc = spawn(IGNORES_TERM, name="stubborn")
    proc.wait_for_output("ready")
    with pytest.raises(pytest.fail.Exception, match=r"shutdown hung(.|\n)*stubborn(.|\n)*ready"):
        stop_or_fail([proc], grace=0.3)
    assert not proc.running()
