"""Input from outside never names a Redis key before it is validated: a hostile channel code,
date, token or ops scope is a 4xx JSON answer, no key is built from it, and every key left in
Redis is in the key grammar (tests/key_grammar.py)."""
from urllib.parse import quote

import orjson
import pytest
from django.test import Client

from api import tokens
from core import keys
from tests.key_grammar import is_key

pytestmark = pytest.mark.django_db

HOSTILE = ["a{b}", "{x}", "a}b", "a:b", "a*", "*", "a?b", "[ab]", "a b", " a", "a\\b", "a|b", "café", "ü",
           "x" * 33, "x" * 5000, "a\x00b", "a\nb", "..", "-a", "١"]
BUILDERS = [name for name in dir(keys) if name.endswith("_key")]


@pytest.fixture
def named(monkeypatch):
    """Every key part given to a core.keys builder during the test, as text."""
    parts: list[str] = []
    for name in BUILDERS:
        real = getattr(keys, name)

        def spy(*args, _real=real):
            parts.extend(str(a) for a in args)
            return _real(*args)

        monkeypatch.setattr(keys, name, spy)
    return parts


def assert_no_key_from(hostile: str, parts: list[str], redis_client):
    assert not [p for p in parts if hostile in p], parts
    stray = [k for k in redis_client.scan_iter(match=f"{keys.prefix()}:*", count=1000) if not is_key(k)]
    assert not stray


def error_of(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    return orjson.loads(response.content)["error"]["code"]


@pytest.mark.parametrize("code", HOSTILE)
def test_a_hostile_channel_code_is_a_400_and_names_no_key(warm_world, redis_client, named, code):
    response = Client().get(f"/api/v1/me/playback/{quote(code, safe='')}", **warm_world.auth(warm_world.fan))
    assert error_of(response, 400) == "bad_channel_code"
    assert not named  # refused before the viewer's entries are even looked up
    assert_no_key_from(code, named, redis_client)


@pytest.mark.parametrize("day", [*HOSTILE, "2026-01-01}", "2026-01-01:x", "2026-1-1", "２０２６-01-01", "2026-02-30",
                                 "2026-01-01 ", "+2026-01-01"])
def test_a_hostile_date_is_a_400_and_names_no_key(warm_world, redis_client, named, day):
    response = Client().get(f"/api/v1/me/epg?date={quote(day, safe='')}", **warm_world.auth(warm_world.fan))
    assert error_of(response, 400) == "bad_date"
    assert_no_key_from(day, named, redis_client)


@pytest.mark.parametrize("header", [
    "Bearer 1:x", "Bearer 1.v.99999999999.g1:sig", "Bearer {x}", "Bearer *", "Bearer " + "x" * 300,
    "Bearer ١.v.1.g1:x", "Basic abc", "Bearer", "bearer  ",
])
def test_a_hostile_token_is_a_401_and_names_no_key(api_world, named, header):
    response = Client().get("/api/v1/me/profile", HTTP_AUTHORIZATION=header)
    assert error_of(response, 401)
    assert not named


def test_a_well_signed_token_names_only_its_own_profile_key(api_world, redis_client, named):
    """The id in the token is parsed strictly (ASCII digits, no sign), so it names one profile key."""
    response = Client().get("/api/v1/me/profile", HTTP_AUTHORIZATION=f"Bearer {tokens.issue(api_world.fan.pk, ttl=60)}")
    assert response.status_code == 200
    assert str(api_world.fan.pk) in named
    assert all(is_key(k) for k in redis_client.scan_iter(match=f"{keys.prefix()}:*"))


@pytest.mark.parametrize("scope", [
    {"regions": ["EU-WEST}"]}, {"regions": ["EU:WEST"]}, {"regions": ["*"]}, {"regions": ["x" * 33]},
    {"regions": [["EU-WEST"]]}, {"profiles": ["1:*"]}, {"profiles": [True]}, {"profiles": [-1]}, {"profiles": [1.0]},
    {"profiles": [2**63]}, {"epg_dates": ["2026-01-01}"]}, {"epg_dates": ["2026-02-30"]}, {"epg_dates": ["*"]},
    {"all": "yes"}, {"all": True, "regions": ["EU-WEST"]}, {"regions": "EU-WEST"}, {"nope": 1},
])
def test_a_hostile_ops_scope_is_a_400_and_names_no_key(api_world, named, scope):
    ops = api_world.ops_auth
    for path, doc in (("/api/v1/ops/warmups", scope),
                      ("/api/v1/ops/events", {"name": "x", "starts_at": "2099-01-01T00:00:00Z", "lead_seconds": 60,
                                              "scope": scope})):
        response = Client().post(path, orjson.dumps(doc), content_type="application/json", **ops)
        assert error_of(response, 400), path
    assert not named
