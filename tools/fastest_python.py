"""Print the fastest Python 3.11 on this machine that can make a venv (`make` builds .venv with it).

A distribution's own interpreter is often built with PGO and LTO while a hand-built one (pyenv's
default) is not: here Debian's python3.11 ran pure Python ~1.6-2x faster than pyenv's. The flags
do not show in sysconfig on every build, so time the candidates instead of guessing.
Runs on any Python 3 with the standard library only (it picks the interpreter for the venv).
Exits 1 when no candidate fits; the Makefile then falls back to `python3.11`/`python3`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

CANDIDATES = ("/usr/bin/python3.11", "/usr/local/bin/python3.11", "python3.11", "python3")
# Best of 5 x 10 sums of a million ints: about 0.1-0.3 s per candidate.
PROBE = (
    "import sys, timeit, venv, ensurepip; assert sys.version_info[:2] == (3, 11); "
    "print(min(timeit.repeat('sum(range(1_000_000))', number=10, repeat=5)))"
)


def timings() -> dict[str, float]:
    out: dict[str, float] = {}
    for name in CANDIDATES:
        path = shutil.which(name)
        if not path or os.path.realpath(path) in {os.path.realpath(p) for p in out}:
            continue
        try:
            done = subprocess.run([path, "-c", PROBE], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            out[path] = float(done.stdout.strip())
    return out


def main() -> int:
    found = timings()
    if not found:
        return 1
    if "-v" in sys.argv[1:]:
        for path, seconds in sorted(found.items(), key=lambda kv: kv[1]):
            print(f"{path}: {seconds * 100:.1f} ms per sum(range(1_000_000))", file=sys.stderr)
    print(min(found, key=found.get))
    return 0


if __name__ == "__main__":
    sys.exit(main())
