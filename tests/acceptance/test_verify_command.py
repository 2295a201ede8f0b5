"""`manage.py cache_verify` run as operators run it: exit codes 0, 1 and 2, --json, --repair."""
import subprocess
import sys

import orjson
import pytest

from core import keys
from tests.waiting import ROOT

pytestmark = pytest.mark.django_db(transaction=True)  # the manage.py process sees only committed rows


def cache_verify(env, *args):
    return subprocess.run([sys.executable, "manage.py", "cache_verify", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_exit_codes_json_and_repair_in_a_real_process(warm_world, redis_client, service_env):
    env = {**service_env, "PREWARM_VERIFY_GRACE_SECONDS": "0.5"}
    clean = cache_verify(env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.strip().splitlines()[-1] == "clean"

    key = keys.profile_key(warm_world.fan.pk)
    redis_client.hset(key, "region", "US-EAST")
    found = cache_verify(env, "--json")
    assert found.returncode == 1, found.stdout + found.stderr
    report = orjson.loads(found.stdout)
    assert report["families"]["profile"]["stale"] == 1
    assert report["families"]["profile"]["examples"]["stale"][0]["fields"] == ["region"]
    assert key in found.stderr  # logged as a warning

    repaired = cache_verify(env, "--repair", "--family", "profile")
    assert repaired.returncode == 1 and "repaired" in repaired.stdout  # drift was found (and fixed)
    assert cache_verify(env).returncode == 0


@pytest.mark.parametrize(
    "override, message",
    [({"REDIS_URL": "redis://127.0.0.1:1/0"}, "Redis unreachable"),
     ({"DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere"}, "Postgres unreachable")],
)
def test_an_unreachable_server_is_exit_2_with_one_line(service_env, override, message):
    out = cache_verify({**service_env, **override})
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr


def test_bad_arguments_are_a_usage_error(service_env):
    out = cache_verify(service_env, "--family", "nope")
    assert out.returncode == 2 and "unknown family nope" in out.stderr
