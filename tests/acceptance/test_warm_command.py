"""`manage.py warm` run as operators run it: its scopes, and resuming after it was interrupted."""
import signal
import subprocess
import sys

import pytest

from core import keys, warmup
from core.models import Channel, Profile
from tests.rows import bulk_profiles
from tests.waiting import ROOT, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SPANS = 4  # profiles spread over this many of warmup.SPAN-sized id spans


def cached(client, ids) -> int:
    pipe = client.pipeline(transaction=False)
    for pk in ids:
        pipe.exists(keys.profile_key(pk))
    return sum(pipe.execute())


def warm(env, *args, check=True):
    out = subprocess.run([sys.executable, "manage.py", "warm", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 or not check, out.stdout + out.stderr
    return out


def test_profiles_and_epg_scopes_build_only_what_they_name(catalogue, redis_client, service_env):
    ids = bulk_profiles(catalogue, 10)
    out = warm(service_env, "--profiles", str(ids[0]), str(ids[1]))
    assert "profiles: 2 written" in out.stdout
    assert cached(redis_client, ids) == 2
    assert not redis_client.keys(keys.prefix() + ":epg:*")
    out = warm(service_env, "--epg")
    assert f"epg: {Channel.objects.count()} channels warmed" in out.stdout
    assert redis_client.keys(keys.prefix() + ":epg:*") and cached(redis_client, ids) == 2


def test_an_interrupted_warm_up_resumes_and_restart_starts_over(catalogue, redis_client, service_env):
    ids = bulk_profiles(catalogue, SPANS * warmup.SPAN)
    total = Profile.objects.count()
    done_key = keys.warm_done_key("all")
    argv = [sys.executable, "manage.py", "warm", "--all", "--jobs", "1"]
    with subprocess.Popen(argv, cwd=ROOT, env=service_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as run:
        try:
            wait_for(lambda: redis_client.scard(done_key) >= 1, timeout=120, message="a first span finished")
            run.send_signal(signal.SIGINT)  # the operator's Ctrl-C
            output = run.communicate(timeout=60)[0]
        finally:
            if run.poll() is None:
                run.kill()
    finished = redis_client.scard(done_key)
    assert run.returncode != 0 and 1 <= finished < SPANS + 1, output

    resumed = warm(service_env, "--all", "--jobs", "2")
    warmed = int(resumed.stdout.split("profiles: ")[-1].split(" warmed")[0])
    assert warmed < total  # the finished spans were skipped ...
    assert cached(redis_client, ids) == len(ids)  # ... and every profile is warm
    assert not redis_client.exists(done_key)  # a completed run forgets its spans

    redis_client.sadd(done_key, *range(SPANS + 1))  # as if an earlier run had stopped late
    restarted = warm(service_env, "--all", "--restart")
    assert f"profiles: {total} warmed" in restarted.stdout
