"""manage.py warm: every profile, class and fragment; parallel; resumable; clear errors."""
import pytest
from django.core.management import CommandError, call_command

from core import keys, services, warmup
from core.models import Profile

pytestmark = pytest.mark.django_db(transaction=True)


def cached(client, ids):
    pipe = client.pipeline(transaction=False)
    for pk in ids:
        pipe.exists(keys.profile_key(pk))
    return sum(pipe.execute())


@pytest.fixture
def profiles(catalogue):
    made = Profile.objects.bulk_create(
        [Profile(region=catalogue["eu" if i % 2 else "us"], isp=catalogue["fibra"]) for i in range(300)]
    )
    return [p.pk for p in made]


def test_warm_all_in_two_processes(profiles, redis_client, capsys):
    call_command("warm", "--all", "--jobs", "2")
    assert cached(redis_client, profiles) == len(profiles)
    members = redis_client.smembers(keys.region_classes_key("EU-WEST"))
    assert len(members - {services.COMPLETE_MEMBER}) == 1  # one class, and the completeness marker
    assert "profiles: 300 warmed" in capsys.readouterr().out


def test_warm_region_only(profiles, redis_client):
    call_command("warm", "--region", "EU-WEST", "--jobs", "1")
    eu = list(Profile.objects.filter(region__code="EU-WEST").values_list("id", flat=True))
    assert cached(redis_client, eu) == len(eu) == 150
    assert cached(redis_client, profiles) == 150


def test_resume_skips_finished_spans(profiles, redis_client, monkeypatch):
    monkeypatch.setattr(warmup, "SPAN", 100)
    spans, total = warmup.pending_spans("all", None, resume=True)
    redis_client.sadd(keys.warm_done_key("all"), spans[0])  # as if a run stopped after one span
    progress = warmup.warm_profiles("all", None, jobs=1, resume=True)
    assert progress.done == total - len([p for p in profiles if p // 100 == spans[0]])
    assert not redis_client.exists(keys.warm_done_key("all"))


@pytest.mark.parametrize(
    "args, message",
    [(["--region", "NOWHERE"], "unknown region code(s): NOWHERE"), (["--all", "--jobs", "0"], "--jobs must be")],
)
def test_bad_input_is_a_one_line_error(catalogue, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("warm", *args)
