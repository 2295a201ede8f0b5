"""Decoding cache hashes into served bytes; request parsing helpers."""
import math

import orjson
import pytest

from api.entries import (
    BadEntry,
    epg_etag,
    fragment_parts,
    json_str,
    parse_class,
    parse_profile,
    profile_body,
    profile_etag,
)
from api.http import etag_matches

PROFILE = {
    b"version": b"7", b"built_at": b"1700000000000", b"region": b"EU-WEST", b"isp": b"fibra",
    b"tz": b"Europe/London", b"subscriptions": b'["premium","sports"]', b"class": b"0123456789abcdef",
    b"valid_until": b"",
}
CLASS = {
    b"version": b"3", b"built_at": b"1700000000001", b"valid_until": b"1800000000",
    b"data": orjson.dumps({
        "region": "EU-WEST", "isp": "fibra", "plans": ["premium"], "tz": "Europe/London",
        "allowed": ["news", "movies"], "allowed_ids": [1, 3], "denied": {"local": "geo_blocked"},
    }),
}


@pytest.mark.parametrize("raw", [b"plain", b"", b'quo"te', b"back\\slash", b"ctl\x01", "Ünï".encode(), b"\xff"])
def test_json_str_is_valid_json_for_any_bytes(raw):
    assert orjson.loads(json_str(raw)) == raw.decode("utf-8", "replace")


def test_profile_and_class_make_one_json_document():
    profile = parse_profile(42, PROFILE)
    cls = parse_class(CLASS)
    doc = orjson.loads(profile_body(profile, cls))
    assert doc == {
        "id": 42, "region": "EU-WEST", "isp": "fibra", "timezone": "Europe/London",
        "subscriptions": ["premium", "sports"], "class": "0123456789abcdef", "channels": ["news", "movies"],
        "version": 7, "built_at": 1700000000000, "valid_until": None,
    }
    assert profile.valid_until == math.inf and cls.valid_until == 1800000000
    assert profile_etag(profile, cls) == '"p7.1700000000000-c3.1700000000001"'
    assert cls.decisions["news"] == (200, b'{"channel":"news","allowed":true}')
    status, body = cls.decisions["local"]
    assert status == 403 and orjson.loads(body)["error"]["code"] == "geo_blocked"


def test_odd_profile_values_are_escaped():
    profile = parse_profile(1, {**PROFILE, b"region": b'E"U\\', b"isp": "фибра".encode()})
    doc = orjson.loads(profile_body(profile, parse_class(CLASS)))
    assert (doc["region"], doc["isp"]) == ('E"U\\', "фибра")


def test_absent_tombstone_and_malformed_profiles():
    assert parse_profile(1, {}) is None
    assert parse_profile(1, {b"deleted": b"1", b"built_at": b"5"}).deleted
    for broken in ({**PROFILE, b"version": b"x"}, {**PROFILE, b"subscriptions": b"premium"},
                   {k: v for k, v in PROFILE.items() if k != b"tz"}, {**PROFILE, b"valid_until": b"soon"}):
        with pytest.raises(BadEntry):
            parse_profile(1, broken)
    with pytest.raises(BadEntry):
        parse_class({**CLASS, b"data": b"{not json"})


def test_fragments_and_epg_etag():
    assert fragment_parts([None, None, None, None]) is None
    assert fragment_parts([b"2", b"9", b'{"id":1}', None]) == (b'{"id":1}', b"2.9")
    assert fragment_parts([None, b"9", None, b"1"]) == (b"", b"deleted.9")
    with pytest.raises(BadEntry):
        fragment_parts([b"2", b"9", b"", None])
    a = epg_etag("c1.1", "2026-01-01", [b"1.1", b"2.2"])
    assert a != epg_etag("c1.1", "2026-01-01", [b"1.1", b"2.3"]) != epg_etag("c1.2", "2026-01-01", [b"1.1", b"2.2"])
    assert a.startswith('"e') and a.endswith('"')


def test_if_none_match_forms():
    assert etag_matches('"a"', '"a"') and etag_matches('W/"a"', '"a"') and etag_matches('"x", "a"', '"a"')
    assert etag_matches("*", '"a"')
    assert not etag_matches(None, '"a"') and not etag_matches('"b"', '"a"') and not etag_matches("", '"a"')



# -- what a read-back entry may name (issue 13: keys are never built from unvalidated input) --


@pytest.mark.parametrize("class_id", [b"x}:*", b"0123456789abcdef:flight", b"0123456789ABCDEF", b"", b"\xff" * 16,
                                      b"0123456789abcde", b"0123456789abcdef0"])
def test_a_profile_whose_class_is_not_a_class_id_is_malformed(class_id):
    """The class field names the next key read: junk there is a miss (rebuilt), never a key."""
    with pytest.raises(BadEntry):
        parse_profile(1, {**PROFILE, b"class": class_id})


def class_with(**data):
    doc = {**orjson.loads(CLASS[b"data"]), **data}
    return {**CLASS, b"data": orjson.dumps(doc)}


@pytest.mark.parametrize("data", [
    {"allowed_ids": ["1}:*"]}, {"allowed_ids": [1.5]}, {"allowed_ids": [True]}, {"allowed_ids": [0]},
    {"allowed_ids": [-3]}, {"allowed_ids": [2**63]}, {"allowed_ids": 5}, {"allowed_ids": {"1": 1}},
    {"tz": "Europe/London}|2026-01-01"}, {"tz": "Mars/Olympus"}, {"tz": "../../etc/passwd"}, {"tz": ""}, {"tz": 3},
    {"allowed": "news"}, {"allowed": [1]}, {"denied": ["local"]}, {"denied": {"local": 1}}, {"region": None},
])
def test_a_class_entry_of_the_wrong_shape_is_malformed(data):
    """Its channel ids and zone name the EPG keys, and the zone picks the guide's day: a field
    of the wrong type or an unknown zone is a miss (rebuilt), never a key or an error."""
    with pytest.raises(BadEntry):
        parse_class(class_with(**data))
