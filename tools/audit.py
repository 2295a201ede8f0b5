"""CI's dependency audit: pip-audit over the installed environment, and what its answer means.

A known vulnerability in a dependency fails CI. Not reaching a vulnerability service does not:
pip-audit asks PyPI's JSON API (or OSV), which a CI machine behind a private index or without
outside network cannot reach. It then either fails with a connection error or, when a mirror
answers 404 for every package, skips them all and says "No known vulnerabilities found" with
exit 0, though nothing was audited. Both are reported here in one clear line and pass: failing
every run on a network we do not control would teach people to ignore the audit.

    python -m tools.audit [pip-audit arguments...]
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_SECONDS = 300
# A skipped dependency with one of these reasons was not looked up at all (not a dependency
# that PyPI does not know, such as the project itself, which is skipped with --skip-editable).
UNREACHED = ("not found on PyPI", "could not be audited")


@dataclass(frozen=True, slots=True)
class Verdict:
    failed: bool
    message: str


def judge(report: dict | None, returncode: int, stderr: str) -> Verdict:
    """The audit's meaning from pip-audit's JSON report (None when it wrote none)."""
    if report is None:
        last = next((line for line in reversed(stderr.strip().splitlines()) if line.strip()), "no output")
        return Verdict(False, f"audit: NOT RUN, pip-audit could not reach a vulnerability service "
                              f"(exit {returncode}: {last[:200]}); not failing CI for it")
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    if vulnerable:
        lines = [f"  {d['name']} {d.get('version', '?')}: "
                 + ", ".join(f"{v.get('id')} (fixed in {', '.join(v.get('fix_versions') or ['no release'])})"
                             for v in d["vulns"])
                 for d in vulnerable]
        return Verdict(True, f"audit: FAILED, {len(vulnerable)} dependencies with known vulnerabilities:\n"
                       + "\n".join(lines))
    unreached = [d for d in deps if any(r in (d.get("skip_reason") or "") for r in UNREACHED)]
    audited = [d for d in deps if "skip_reason" not in d]
    if not audited:
        return Verdict(False, f"audit: NOT RUN, the vulnerability service answered for none of {len(deps)} "
                              f"dependencies ({len(unreached)} 'not found': a mirror or no network); not failing CI")
    partly = f"; {len(unreached)} not found on the service" if unreached else ""
    return Verdict(False, f"audit: ok, {len(audited)} dependencies audited, no known vulnerabilities{partly}")


def run(args: list[str]) -> Verdict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "--format", "json",
                 "--output", str(out), *args],
                capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            return Verdict(False, f"audit: NOT RUN, pip-audit took over {TIMEOUT_SECONDS} s; not failing CI")
        try:
            report = json.loads(out.read_text())
        except (OSError, ValueError):
            report = None
        return judge(report, proc.returncode, proc.stderr)


def main() -> int:
    verdict = run(sys.argv[1:])
    print(verdict.message)
    return 1 if verdict.failed else 0


if __name__ == "__main__":
    sys.exit(main())
