"""A throw-away RabbitMQ node on free loopback ports, from the machine's rabbitmq-server."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tools import procs

START_SECONDS = 90  # the Erlang VM and the rabbit application start slowly on shared cores


class LocalRabbit:
    """One node with its own data, logs, Erlang port mapper and distribution ports, so it never
    meets another RabbitMQ on the machine; `url` is its amqp:// URL (the guest user)."""

    def __init__(self, directory: Path):
        self.server = shutil.which("rabbitmq-server")
        self.ctl = shutil.which("rabbitmqctl")
        self.dir = directory
        self.port, epmd, dist = procs.free_port(), procs.free_port(), procs.free_port()
        self.node = f"prewarm{self.port}@localhost"
        self.env = {
            **os.environ, "HOME": str(directory), "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": procs.LOCALHOST, "RABBITMQ_NODE_PORT": str(self.port),
            "ERL_EPMD_PORT": str(epmd), "RABBITMQ_DIST_PORT": str(dist),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"), "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(directory / "mnesia" / "feature_flags"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbit"),
        }
        self.proc = None

    @property
    def available(self) -> bool:
        return bool(self.server and self.ctl)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{procs.LOCALHOST}:{self.port}//"

    def start(self) -> LocalRabbit:
        for sub in ("mnesia", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "plugins").write_text("[].\n")
        (self.dir / "rabbit.conf").write_text("")
        # As root the server script runs the node as the rabbitmq user: let it write here.
        for path in (self.dir, *self.dir.rglob("*")):
            path.chmod(0o777)
        self.proc = procs.spawn("rabbitmq", [self.server], self.dir / "server.log", env=self.env)
        self.proc.wait_port(self.port, timeout=START_SECONDS)
        return self

    def stop(self) -> None:
        # The node runs outside the script's process group (a user switch): ask it to stop.
        subprocess.run([self.ctl, "-n", self.node, "shutdown"], env=self.env, capture_output=True, timeout=60)
        subprocess.run(["epmd", "-kill"], env=self.env, capture_output=True, timeout=10)
        if self.proc is not None:
            self.proc.kill()
