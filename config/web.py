"""The web process: granian serving the WSGI app, one command line for Procfile, image and compose."""
# python -m config.web [TARGET]   (TARGET defaults to config.wsgi:application)
# Reads HOST and PORT; mounts PREWARM_STATIC_ROOT at /static only when collectstatic has
# filled it, since granian refuses to start with a missing mount directory.
from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = "config.wsgi:application"
# Two processes with one blocking thread each: the views hold the GIL almost throughout
# (cached bytes out), so more threads only queue; `python -m bench api` measures this setup.
WORKERS = 2
# granian 2.8 never finishes stopping a worker that gets the stop while it is still
# starting (every time here: a SIGTERM right after the first worker answers), and once in
# a loaded full test run a started worker did not stop either (upstream reports a shutdown
# deadlock of this kind: emmett-framework/granian#875). This bounds the wait, under
# honcho's 5 s and compose's 10 s before their SIGKILL. Requests take ms.
WORKERS_KILL_TIMEOUT_S = 3
SERVER_FLAGS = (
    "--interface", "wsgi", "--workers", str(WORKERS), "--blocking-threads", "1",
    "--workers-kill-timeout", str(WORKERS_KILL_TIMEOUT_S),
)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = "8000"


def static_root(environ: Mapping[str, str] = os.environ) -> Path:
    """Where collectstatic writes (settings.STATIC_ROOT) and what granian serves at /static."""
    return Path(environ.get("PREWARM_STATIC_ROOT") or ROOT / ".static")


def argv(target: str = TARGET, environ: Mapping[str, str] | None = None) -> list[str]:
    """The granian command line, for exec here or for a harness that starts the server itself."""
    env = os.environ if environ is None else environ
    command = [
        sys.executable, "-m", "granian", *SERVER_FLAGS,
        "--host", env.get("HOST") or DEFAULT_HOST, "--port", env.get("PORT") or DEFAULT_PORT,
    ]
    static = static_root(env)
    if static.is_dir():
        # Served by granian's Rust side at the default route /static (settings.STATIC_URL).
        command += ["--static-path-mount", str(static)]
    return [*command, target]


def main(args: list[str] | None = None) -> None:
    args = sys.argv[1:] if args is None else args
    command = argv(args[0] if args else TARGET)
    # exec, not a child: SIGTERM from honcho, compose or a test reaches granian itself.
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
