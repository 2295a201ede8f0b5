"""config/web: the one granian command line (flags, address, target, static mount)."""
import sys
from pathlib import Path

import pytest
from django.conf import settings

from config import web


def option(argv, name):
    return argv[argv.index(name) + 1]


def test_the_flags_are_the_measured_ones_and_the_app_is_the_product(tmp_path):
    argv = web.argv(environ={"PREWARM_STATIC_ROOT": str(tmp_path / "none")})
    assert argv[:3] == [sys.executable, "-m", "granian"]
    assert " ".join(argv[3:]).startswith("--interface wsgi --workers 2 --blocking-threads 1 ")
    assert argv[-1] == "config.wsgi:application"
    assert (option(argv, "--host"), option(argv, "--port")) == ("127.0.0.1", "8000")
    # granian bounds a worker that will not stop, before honcho's SIGKILL at 5 s.
    assert 0 < int(option(argv, "--workers-kill-timeout")) < 5


def test_host_port_and_target_come_from_the_caller():
    argv = web.argv("bench.wsgi:application", {"HOST": "0.0.0.0", "PORT": "9123"})
    assert (option(argv, "--host"), option(argv, "--port")) == ("0.0.0.0", "9123")
    assert argv[-1] == "bench.wsgi:application"


def test_static_files_are_mounted_only_once_collected(tmp_path):
    env = {"PREWARM_STATIC_ROOT": str(tmp_path / "static")}
    assert "--static-path-mount" not in web.argv(environ=env)  # granian refuses a missing directory
    (tmp_path / "static").mkdir()
    assert option(web.argv(environ=env), "--static-path-mount") == str(tmp_path / "static")


def test_collectstatic_writes_where_the_web_process_serves_from():
    assert str(web.static_root()) == settings.STATIC_ROOT
    assert web.static_root({}) == web.ROOT / ".static"
    assert web.static_root({"PREWARM_STATIC_ROOT": "/app/static"}) == Path("/app/static")


def test_main_execs_granian_so_signals_reach_it(monkeypatch):
    execs = []

    def fake_exec(path, argv):
        execs.append((path, argv))
        raise SystemExit(0)

    monkeypatch.setattr(web.os, "execv", fake_exec)
    monkeypatch.setenv("PORT", "8123")
    with pytest.raises(SystemExit):
        web.main(["bench.wsgi:application"])
    [(path, argv)] = execs
    assert path == sys.executable and argv[-1] == "bench.wsgi:application" and option(argv, "--port") == "8123"
