"""A peer's server process: granian with the Procfile's flags on a free loopback port."""
from __future__ import annotations

import http.client
import time

from config import web
from tools import procs

from . import WSGI, server_env

TIMEOUT_S = 30
START_TIMEOUT_S = 60


class PeerServer:
    """One peer's granian server (bench.peers.wsgi), stopped by its process group."""

    def __init__(self, peer: str, env: dict[str, str], **overrides: str):
        from bench import common

        self.peer = peer
        self.port = procs.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**server_env(peer, env), **overrides, "HOST": "127.0.0.1", "PORT": str(self.port)}
        t0 = time.monotonic()
        self.child = common.child(f"peer-{peer}", web.argv(WSGI, self.env), self.env)
        self.child.wait_http(self.base + "/healthz", timeout=START_TIMEOUT_S)
        self.started_s = time.monotonic() - t0

    def request(self, method: str, path: str, token: str | None = None, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        try:
            sent = dict(headers or {})
            if token:
                sent["Authorization"] = f"Bearer {token}"
            if body is not None:
                sent["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=sent)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        return self.request("GET", path, token)

    def stop(self) -> None:
        from bench import common

        common.stop(self.child)
