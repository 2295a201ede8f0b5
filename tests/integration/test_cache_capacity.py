"""cache_capacity: real entries weighed in Redis, sized for N profiles; scratch keys gone after."""
from io import StringIO

import orjson
import pytest
from django.core.management import CommandError, call_command

from core import keys, services
from ops import capacity
from tests.rows import bulk_profiles

pytestmark = pytest.mark.django_db(transaction=True)


def measure(*args):
    out = StringIO()
    call_command("cache_capacity", *args, stdout=out)
    return out.getvalue()


def test_sizes_every_family_from_real_entries_and_leaves_no_key(catalogue, redis_client):
    ids = bulk_profiles(catalogue, 500, plan="premium")
    services.rebuild_profiles(ids[:1])  # one real entry to compare with
    before = set(redis_client.keys("*"))
    doc = orjson.loads(measure("--profiles", "1000000", "--json"))
    assert set(redis_client.keys("*")) == before  # the scratch keys were deleted

    profile = doc["families"]["profile"]
    real = redis_client.memory_usage(keys.profile_key(ids[0]), samples=0)
    assert profile["entries"] == 1_000_000 and profile["weighed"] == capacity.SAMPLE
    assert abs(profile["bytes_per_entry"] - real) <= 16  # the same shape, keys of the same length
    assert doc["families"]["class"]["entries"] == 1  # EU-WEST, fibra, premium: the one class in use
    zones, channels = 2, 4  # the catalogue's regions' time zones, its channels
    assert doc["families"]["epg fragment"]["entries"] == channels * zones * doc["days"]
    assert doc["total_bytes"] == sum(f["bytes"] for f in doc["families"].values())
    assert doc["maxmemory_bytes"] >= doc["total_bytes"] * capacity.HEADROOM
    assert doc["maxmemory"] == f"{doc['maxmemory_bytes'] // capacity.MB}mb"

    table = measure("--profiles", "1000000", "--days", "2")
    lines = table.splitlines()
    assert lines[0].split() == ["family", "entries", "bytes/entry", "total"]
    assert [line.split("  ")[0] for line in lines[1:-2]] == ["profile", "class", "class set", "epg fragment"]
    assert lines[-1].startswith("maxmemory ") and "1,000,000 profiles, 2 guide days" in lines[-1]


@pytest.mark.parametrize("args, message", [(["--profiles", "0"], "at least 1"), (["--profiles", "5", "--days", "0"],
                                                                                 "--days must be at least 1")])
def test_bad_input_is_a_one_line_error(catalogue, args, message):
    bulk_profiles(catalogue, 3)
    with pytest.raises(CommandError, match=message):
        measure(*args)


def test_nothing_to_measure_says_what_to_do(catalogue):
    with pytest.raises(CommandError, match="run `manage.py seed_demo` first"):
        measure("--profiles", "10")
