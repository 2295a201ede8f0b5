"""tools/procs over real sockets: waiting for a port or a URL (the unit layer refuses connects)."""
import sys

import pytest

from tools import procs


def start(tmp_path, name, code):
    return procs.spawn(name, [sys.executable, "-c", code], tmp_path / f"{name}.log")


def test_wait_port_returns_once_the_child_listens(tmp_path):
    port = procs.free_port()
    assert not procs.port_open(port)
    proc = start(tmp_path, "listener", (
        "import socket, time; time.sleep(0.3); s = socket.socket();"
        f" s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)"
    ))
    try:
        proc.wait_port(port, timeout=10)
        assert procs.port_open(port)
    finally:
        assert proc.stop()


def test_wait_http_returns_once_the_url_answers_200(tmp_path):
    port = procs.free_port()
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "ok.txt").write_text("ok")
    proc = start(tmp_path, "http", (
        "import functools, http.server;"
        f" h = functools.partial(http.server.SimpleHTTPRequestHandler, directory={str(tmp_path / 'www')!r});"
        f" http.server.HTTPServer(('127.0.0.1', {port}), h).serve_forever()"
    ))
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/ok.txt", timeout=10)
        assert not procs.http_ok(f"http://127.0.0.1:{port}/missing")  # a 404 is not ready
    finally:
        assert proc.stop()


def test_wait_http_fails_with_the_log_tail_when_the_server_dies(tmp_path):
    port = procs.free_port()
    proc = start(tmp_path, "crashing", "import sys; sys.exit('cannot bind: address in use')")
    with pytest.raises(procs.ProcessError, match="exited with 1 before 200 from(.|\n)*cannot bind"):
        proc.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=10)
