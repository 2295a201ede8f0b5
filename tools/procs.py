"""Child processes for the dev stack, the tests and the benchmarks: spawn, wait until ready, stop."""
# The standard library is enough: a child in its own session (so its process group is
# ours to signal), its output in a log file, readiness polled, and a SIGTERM → grace →
# SIGKILL stop that says when the grace ran out. psutil would add a compiled dependency
# for the one thing we need from /proc (the live members of a process group).
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

LOCALHOST = "127.0.0.1"
POLL_INTERVAL = 0.05
STOP_GRACE = 15.0
PR_SET_PDEATHSIG = 1


class ProcessError(RuntimeError):
    """A child exited, or did not become ready in time; the message ends with its log's tail."""


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = LOCALHOST, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket() as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


# Loopback URLs: an http_proxy in the environment must never be asked.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when `url` answers 200."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc.

    `killpg(pgid, 0)` would also count zombies: orphans re-parented to a subreaper (the dev
    stack) that has not reaped them yet are gone for our purposes.
    """
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def die_with_parent(sig: int):
    """preexec_fn: the child gets `sig` when its parent dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    return lambda: libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


class Proc:
    """A command in its own session and process group, with stdout and stderr in one log file."""

    def __init__(self, name: str, popen: subprocess.Popen, log_path: Path, log_start: int, stop_signal: int):
        self.name, self.popen, self.log_path = name, popen, log_path
        self.stop_signal = stop_signal
        self.hung = False  # set by stop(): the group ignored the stop signal for the whole grace
        self._log_start = log_start

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        """What this run wrote to the log (an appended log's earlier runs left out)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:]) or "(empty log)"

    def wait_until(self, ready, timeout: float, what: str) -> None:
        """Poll ready() until it is truthy; raise ProcessError if the child exits or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.running():
                raise ProcessError(
                    f"{self.name} exited with {self.popen.returncode} before {what}; "
                    f"{self.log_path}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise ProcessError(f"{self.name}: no {what} after {timeout:.0f}s; {self.log_path}:\n{self.tail()}")
            time.sleep(POLL_INTERVAL)

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        self.wait_until(lambda: text in self.output(), timeout, f"{text!r} in its log")

    def wait_port(self, port: int, host: str = LOCALHOST, timeout: float = 30.0) -> None:
        self.wait_until(lambda: port_open(port, host), timeout, f"listener on {host}:{port}")

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        self.wait_until(lambda: http_ok(url), timeout, f"200 from {url}")

    def signal(self, sig: int) -> None:
        """Send `sig` to the whole group (a server and the workers it forked)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def terminate(self) -> None:
        """Send the stop signal and return at once (stop several, then wait for each)."""
        self.signal(self.stop_signal)

    def wait_stopped(self, grace: float = STOP_GRACE) -> bool:
        """Wait up to `grace` s for the group to exit, then SIGKILL it.

        Returns True when it stopped by itself, False when it had to be killed: a shutdown
        that hangs is a bug to report, not something to paper over.
        """
        deadline = time.monotonic() + grace
        while self.running() or group_members(self.pid):
            if time.monotonic() > deadline:
                self.hung = True
                self.kill()
                break
            time.sleep(POLL_INTERVAL)
        return not self.hung

    def stop(self, grace: float = STOP_GRACE) -> bool:
        """Stop signal, up to `grace` s, then SIGKILL; False when SIGKILL was needed."""
        if not self.running() and not group_members(self.pid):
            return True
        self.terminate()
        return self.wait_stopped(grace)

    def kill(self) -> None:
        """SIGKILL the group and reap the child: a crash, or the end of a grace period."""
        self.signal(signal.SIGKILL)
        self.popen.wait()


def stop_all(children: list[Proc], grace: float = STOP_GRACE) -> list[Proc]:
    """Stop several at once (all signalled, then each awaited); returns those that hung."""
    for child in children:
        child.terminate()
    return [child for child in children if not child.wait_stopped(grace)]


def spawn(
    name: str,
    argv: list[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | str | None = None,
    stop_signal: int = signal.SIGTERM,
    parent_death_signal: int | None = None,
    append: bool = False,
) -> Proc:
    """Start argv in a new session (so no terminal Ctrl-C reaches it: its owner stops it).

    parent_death_signal: sent to the child by the kernel if this process dies first.
    append: keep what earlier runs wrote to log_path (Proc.output() still shows this run only).
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab" if append else "wb") as out:
        start = out.tell()
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=None if parent_death_signal is None else die_with_parent(parent_death_signal),
        )
    return Proc(name, popen, log_path, start, stop_signal)
