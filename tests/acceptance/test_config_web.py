"""`python -m config.web`, as the Procfile, the image and compose run it: starts with or
without collected static files, and serves the admin's once collected."""
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.processes import stop_or_fail, wait_web
from tests.waiting import ROOT
from tools import procs

pytestmark = pytest.mark.acceptance
BASE_CSS = "/static/admin/css/base.css"


@pytest.fixture
def start_web(service_env, tmp_path):
    started = []

    def start(static_root):
        port = procs.free_port()
        env = {**service_env, "HOST": "127.0.0.1", "PORT": str(port), "PREWARM_STATIC_ROOT": str(static_root)}
        proc = procs.spawn("web", [sys.executable, "-m", "config.web"], tmp_path / "web.log", cwd=ROOT, env=env)
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_web(proc, url)
        return proc, url

    yield start
    stop_or_fail(started)


def test_web_starts_before_collectstatic_ever_ran(start_web, tmp_path):
    proc, url = start_web(tmp_path / "never-collected")
    assert requests.get(url + BASE_CSS, timeout=10).status_code == 404
    # exec'd, not wrapped: the process the Procfile started is granian, so its signals are.
    assert b"granian" in Path(f"/proc/{proc.pid}/cmdline").read_bytes()


def test_web_serves_the_admin_static_files_once_collected(service_env, start_web, tmp_path):
    static = tmp_path / "static"
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT, env={**service_env, "PREWARM_STATIC_ROOT": str(static)}, check=True, timeout=120,
    )
    _, url = start_web(static)
    response = requests.get(url + BASE_CSS, timeout=10)
    assert response.status_code == 200, response.text[:200]
    assert response.headers["Content-Type"].startswith("text/css")
    assert response.content == (static / "admin" / "css" / "base.css").read_bytes()
