"""The servers a run compares: one granian server per peer (its own settings module and
process), and the constant-bytes floors, all with the Procfile's granian flags."""
from __future__ import annotations

from dataclasses import dataclass

from config import web
from tools import procs

from .. import common, peers
from ..peers import check

FLOOR_WSGI = "bench.floor_wsgi:application"


@dataclass
class Server:
    name: str  # a peer's name, or a floor's
    port: int
    child: procs.Proc

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, token: str | None = None,
                body: bytes | None = None) -> tuple[int, bytes]:
        return check.fetch(self.base, path, token, method, body)

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        return self.request("GET", path, token)

    def stop(self) -> None:
        common.stop(self.child)


def _start(name: str, target: str, env: dict[str, str], ready_path: str) -> Server:
    port = procs.free_port()
    argv = web.argv(target, {**env, "HOST": "127.0.0.1", "PORT": str(port)})
    child = common.child(f"run-{name}", argv, env)
    server = Server(name, port, child)
    child.wait_http(server.base + ready_path, timeout=90)
    return server


def peer(name: str, env: dict[str, str]) -> Server:
    return _start(name, peers.WSGI, peers.server_env(name, env), "/healthz")


def wsgi_floor(name: str, env: dict[str, str], size: int) -> Server:
    return _start(name, FLOOR_WSGI, {**env, "BENCH_FLOOR_BYTES": str(size)}, "/")


def stop_all(servers) -> None:
    for s in servers:
        s.stop()
