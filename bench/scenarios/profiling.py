"""--profile: a py-spy flamegraph of a process (and its children) while a scenario loads it,
saved beside the report (the seed's "start with profiling"). Sampling costs the profiled
process some speed, so a run with --profile is for reading, not for its figures."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from .context import Context

RATE_HZ = 250
# Which cells of which scenario get a flamegraph: the product's warm reads and a worker.
PROFILED = {("prewarm", "epg"), ("prewarm", "playback"), ("worker", "lag")}


def _py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def start(ctx: Context, name: str, label: str, pid: int, seconds: float) -> tuple[subprocess.Popen, Path] | None:
    """Start recording `pid` and its children for `seconds` when --profile asked for this cell."""
    if not ctx.profile or (name, label) not in PROFILED:
        return None
    exe = _py_spy()
    if exe is None:
        ctx.results.notes.append("profile: py-spy not found (pip install -e '.[bench]')")
        return None
    out = ctx.out / f"flame-{re.sub(r'[^a-z0-9]+', '-', f'{name}-{label}')}.svg"
    argv = [exe, "record", "--pid", str(pid), "--subprocesses", "--rate", str(RATE_HZ),
            "--duration", str(max(1, round(seconds))), "--format", "flamegraph", "--output", str(out), "--nonblocking"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, out


def finish(spy: tuple[subprocess.Popen, Path] | None, ctx: Context | None = None) -> None:
    if spy is None:
        return
    proc, out = spy
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        err = "timed out"
    if proc.returncode and ctx is not None:
        ctx.results.notes.append(f"profile: {out.name} failed: {err.strip()[-200:]}")
