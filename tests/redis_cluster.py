"""A throw-away Redis Cluster of three masters on loopback, from the machine's redis-server."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from tools import procs

MASTERS = 3
READY_SECONDS = 20


class LocalCluster:
    """Three `--cluster-enabled` servers on free ports (data and cluster bus), joined by
    `redis-cli --cluster create`; `url` names one node, as a user's REDIS_URL would."""

    def __init__(self, directory: Path, masters: int = MASTERS):
        self.server = shutil.which("redis-server")
        self.cli = shutil.which("redis-cli")
        self.dir, self.masters = directory, masters
        self.ports = [procs.free_port() for _ in range(masters)]
        self.bus_ports = [procs.free_port() for _ in range(masters)]
        self.procs: list = []

    @property
    def available(self) -> bool:
        return bool(self.server and self.cli)

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> LocalCluster:
        for port, bus in zip(self.ports, self.bus_ports):
            node_dir = self.dir / str(port)
            node_dir.mkdir(parents=True, exist_ok=True)
            argv = [self.server, "--port", str(port), "--cluster-port", str(bus), "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no", "--dir", str(node_dir)]
            proc = procs.spawn(f"redis-cluster-{port}", argv, node_dir / "redis.log")
            self.procs.append(proc)
            proc.wait_until(lambda port=port: procs.port_open(port), 10, f"port {port} open")
        subprocess.run(
            [self.cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )
        deadline = time.monotonic() + READY_SECONDS
        while not all(self._ok(p) for p in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        return self

    def _ok(self, port: int) -> bool:
        out = subprocess.run([self.cli, "-p", str(port), "cluster", "info"], capture_output=True, text=True)
        return "cluster_state:ok" in out.stdout

    def flush(self) -> None:
        for port in self.ports:
            subprocess.run([self.cli, "-p", str(port), "flushall"], check=True, capture_output=True)

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
        self.procs.clear()
