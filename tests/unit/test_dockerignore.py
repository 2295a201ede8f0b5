"""The image's build context: the product and what installs it, never tests, bench or the tools."""
import fnmatch
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LEFT_OUT = ("tests", "bench", "tools", ".ci", ".venv", ".devstack", ".git")
KEPT = ("config", "core", "workers", "ops", "api", "schedules", "manage.py", "pyproject.toml", "README.md")


def patterns() -> list[str]:
    lines = (line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines())
    found = [line.rstrip("/") for line in lines if line and not line.startswith("#")]
    # This matcher knows plain and glob patterns; a "!" exception would need Docker's full rules.
    assert not [p for p in found if p.startswith("!")], "update this test's matcher for '!' patterns"
    return found


def ignored(path: str, rules: list[str]) -> bool:
    """Docker's rule: a pattern that matches a path or one of its parent folders leaves it out."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(prefix, rule) for prefix in prefixes for rule in rules)


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return out.stdout.split()


def test_tests_bench_and_tools_stay_out_of_the_image():
    rules = patterns()
    for top in LEFT_OUT:
        assert ignored(top, rules), f"{top}/ would be copied into the image"
    leaked = [f for f in tracked_files() if f.split("/")[0] in LEFT_OUT and not ignored(f, rules)]
    assert leaked == []


def test_the_product_and_its_install_files_go_in():
    rules = patterns()
    for name in KEPT:
        assert not ignored(name, rules), f"{name} is left out of the image"
    product = [f for f in tracked_files() if f.split("/")[0] in KEPT]
    assert product and not [f for f in product if ignored(f, rules) and "__pycache__" not in f]


def test_the_matcher_follows_dockers_folder_rule():
    assert ignored("tests/unit/test_x.py", ["tests"])
    assert ignored("api/__pycache__/x.pyc", ["**/__pycache__"])
    assert not ignored("core/tests_helpers.py", ["tests"])
