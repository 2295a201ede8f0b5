"""`make run` as a new user runs it: the banner's curl line answers, a psql change shows through
the API within seconds, the banner's admin login opens the freshness page, and Ctrl-C leaves
no process behind."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.waiting import ROOT, wait_for
from tools import procs

BOOT_TIMEOUT = 240  # migrate, seed, warm, collectstatic and five processes on a busy machine
PID_LINE = re.compile(r"devstack: (\S+) .* pid (\d+)")

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("curl") is None,
                                reason="needs make and curl, as the README's user has")


def new_user_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "PREWARM_DEV", "PREWARM_KEY_PREFIX",
                        "DJANGO_SETTINGS_MODULE", "SECRET_KEY")}
    env.update(PREWARM_DEVSTACK_DIR=str(tmp_path / "devstack"), PREWARM_STATIC_ROOT=str(tmp_path / "static"),
               PREWARM_PG_PORT=str(procs.free_port()), PREWARM_VALKEY_PORT=str(procs.free_port()),
               PORT=str(procs.free_port()), SEED_PROFILES="50")
    return env


def alive(pid: int) -> bool:
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def curl(line: str) -> dict:
    out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def admin_login_works(banner: str) -> None:
    """The banner's admin line names a login that opens the admin's freshness page."""
    import requests

    found = re.search(r"Admin:\s+(\S+)/admin/\s+\(user (\S+), password (\S+);", banner)
    assert found, banner[-2000:]
    base, user, password = found.groups()
    with requests.Session() as web:
        web.get(f"{base}/admin/login/", timeout=10).raise_for_status()
        answer = web.post(f"{base}/admin/login/?next=/admin/freshness/", timeout=10, data={
            "username": user, "password": password, "next": "/admin/freshness/",
            "csrfmiddlewaretoken": web.cookies["csrftoken"],
        }, headers={"Referer": f"{base}/admin/login/"})
    assert answer.status_code == 200 and "Cache freshness" in answer.text, answer.text[:2000]


def test_make_run_serves_the_banners_curl_line_follows_psql_and_stops_clean(tmp_path):
    env = new_user_env(tmp_path)
    log_path = tmp_path / "make-run.log"
    with open(log_path, "wb") as log:
        run = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    pgid = run.pid
    try:
        def banner():
            text = log_path.read_text(errors="replace")
            assert run.poll() is None, text[-3000:]
            return re.search(r"Try:\s+(curl .*)", text)

        line = wait_for(banner, timeout=BOOT_TIMEOUT, interval=0.5, message="the ready banner").group(1)
        profile = curl(line)
        assert profile["id"] == 1

        change = (
            "UPDATE core_profile SET region_id = (SELECT min(id) FROM core_region WHERE id <> core_profile.region_id)"
            " WHERE id = 1 RETURNING (SELECT code FROM core_region r WHERE r.id = core_profile.region_id)"
        )
        psql = subprocess.run([sys.executable, "-m", "tools.devstack", "psql", "--", "-tAc", change], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)
        assert psql.returncode == 0, psql.stderr
        region = psql.stdout.split()[0]
        assert region != profile["region"]
        started = time.monotonic()
        wait_for(lambda: curl(line)["region"] == region, timeout=10, interval=0.1, message="the psql change served")
        assert time.monotonic() - started < 10
        admin_login_works(log_path.read_text(errors="replace"))
    finally:
        text = log_path.read_text(errors="replace")
        servers = [int(pid) for _, pid in PID_LINE.findall(text)]
        members = procs.group_members(pgid)
        if run.poll() is None:
            os.killpg(pgid, signal.SIGINT)  # Ctrl-C in the terminal: the whole foreground group
        try:
            run.wait(timeout=90)
        finally:
            if run.poll() is None:
                os.killpg(pgid, signal.SIGKILL)
    assert run.returncode is not None
    wait_for(lambda: not [p for p in [*members, *servers] if alive(p)], timeout=30,
             message="every process make run started gone")
    assert procs.group_members(pgid) == []
