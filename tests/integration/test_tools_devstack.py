"""The devstack starts real throw-away servers, passes exit codes through and leaves no process behind."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import devstack, procs

ROOT = Path(__file__).resolve().parents[2]
PID_LINE = re.compile(rb"devstack: (\S+) .* pid (\d+)")
WAIT = 30


def devstack_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(extra)
    return env


def start(*command, **env):
    return subprocess.Popen(
        [sys.executable, "-m", "tools.devstack", "exec", "--throwaway", "--", *command],
        cwd=ROOT,
        env=devstack_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # our signals go to it alone, as `kill PID` would
    )


def server_pids(stderr: bytes) -> dict[str, int]:
    return {name.decode(): int(pid) for name, pid in PID_LINE.findall(stderr)}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes (its parent has not reaped it yet)
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def read_until(proc, marker: bytes, timeout=WAIT) -> bytes:
    """Read the command's stdout until `marker` shows up (the servers are up by then)."""
    os.set_blocking(proc.stdout.fileno(), False)
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        seen += proc.stdout.read() or b""
        time.sleep(0.05)
    os.set_blocking(proc.stdout.fileno(), True)
    assert marker in seen, seen
    return seen


def test_exec_runs_the_command_against_fresh_servers_and_returns_its_exit_code():
    script = (
        "import os, sys, psycopg, redis\n"
        "db, cache = os.environ['DATABASE_URL'], os.environ['REDIS_URL']\n"
        "assert ':5432/' not in db and ':6379/' not in cache, (db, cache)\n"
        "with psycopg.connect(db) as c: name = c.execute('select current_database()').fetchone()[0]\n"
        "assert name == 'prewarm', name\n"
        "assert redis.Redis.from_url(cache).config_get('maxmemory-policy')['maxmemory-policy'] == 'allkeys-lru'\n"
        "sys.exit(7)\n"
    )
    proc = start(sys.executable, "-c", script)
    out, err = proc.communicate(timeout=WAIT * 2)
    assert proc.returncode == 7, err.decode()
    pids = server_pids(err)
    assert set(pids) == {"postgres", "valkey"}, err.decode()
    assert wait_gone(pids.values(), timeout=1) == []


def test_exec_starts_nothing_when_both_urls_are_given():
    proc = subprocess.run(
        [sys.executable, "-m", "tools.devstack", "exec", "--throwaway", "--", "true"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": "postgres://x@127.0.0.1:1/x", "REDIS_URL": "redis://127.0.0.1:1/0"},
        capture_output=True,
        timeout=WAIT,
    )
    assert proc.returncode == 0
    assert server_pids(proc.stderr) == {}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_the_command_and_the_servers(sig):
    proc = start(sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(300)")
    command_pid = int(read_until(proc, b"\n").split()[0])
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=WAIT * 2)
    assert proc.returncode == 128 + sig, err.decode()
    assert wait_gone([command_pid, *server_pids(err).values()]) == []


def test_killing_the_devstack_outright_still_takes_everything_down():
    proc = start(sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(300)")
    command_pid = int(read_until(proc, b"\n").split()[0])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=WAIT)
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    pids = [command_pid, *server_pids(err).values()]
    assert len(pids) == 3, err.decode()
    assert wait_gone(pids) == []
    devstack._sweep_abandoned_tmp_dirs()  # its data dir is left for the next start to sweep


def test_processes_the_command_leaves_behind_are_stopped_too():
    # A daemonised grandchild in its own session, as a Procfile process is once its honcho is gone.
    proc = start("sh", "-c", "setsid sleep 300 & echo $!")
    out, err = proc.communicate(timeout=WAIT * 2)
    assert proc.returncode == 0, err.decode()
    assert b"stopping leftover process" in err
    assert wait_gone([int(out.split()[0])], timeout=1) == []


def test_manage_psql_and_the_env_file_use_the_servers_of_a_running_devstack(tmp_path):
    state = tmp_path / "state"
    env = devstack_env(PREWARM_DEVSTACK_DIR=str(state), PREWARM_PG_PORT=str(procs.free_port()),
                       PREWARM_VALKEY_PORT=str(procs.free_port()))
    for name in ("PREWARM_DEV", "SECRET_KEY", "PREWARM_KEY_PREFIX", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)  # as a new user's shell
    services = subprocess.Popen([sys.executable, "-m", "tools.devstack", "services"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        read_until(services, b"export REDIS_URL")
        check = (
            "from django.db import connection; from core.redis_conn import client;"
            " connection.ensure_connection(); client().ping(); print('both up')"
        )
        # `source .devstack/env` is enough for manage.py: development mode, the stack's key
        # (the settings refuse the built-in one without DEBUG) and the right ports.
        sourced = subprocess.run(
            ["bash", "-c", f"source {state / 'env'} && exec {sys.executable} manage.py shell -c \"{check}\""],
            cwd=ROOT, env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, timeout=WAIT,
        )
        assert sourced.returncode == 0 and "both up" in sourced.stdout, sourced.stderr
        manage = subprocess.run([sys.executable, "-m", "tools.devstack", "exec", "--", "python", "manage.py", "check"],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=WAIT)
        assert manage.returncode == 0, manage.stderr
        assert "using the servers of the running devstack" in manage.stderr
        psql = subprocess.run([sys.executable, "-m", "tools.devstack", "psql", "--", "-tAc", "select 6 * 7"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=WAIT)
        assert psql.returncode == 0 and psql.stdout.strip() == "42", psql.stderr
        assert services.poll() is None  # the sharers stopped nothing
    finally:
        services.send_signal(signal.SIGINT)
        out, err = services.communicate(timeout=WAIT * 2)
    assert services.returncode == 0, err.decode()
    assert wait_gone(server_pids(err).values()) == []
    assert not (state / "env").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="Celery warns only a worker that runs as root")
def test_make_run_silences_celerys_root_warning():
    code = "from celery.platforms import check_privileges; check_privileges(['json'])"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    loud = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=WAIT)
    assert "superuser privileges" in loud.stderr
    env["PYTHONWARNINGS"] = ",".join(devstack.ROOT_WARNINGS)
    quiet = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=WAIT)
    assert quiet.returncode == 0 and quiet.stderr == ""
