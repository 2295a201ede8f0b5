"""core.keys: every key a builder makes is in the key grammar, whatever it is given; a part
outside it is refused (BadKeyPart), never formatted into a key."""
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core import keys
from tests.key_grammar import ZONE, is_key

EXAMPLES = settings(max_examples=400, deadline=None)

# Anything a caller might pass: the right type and shape, a near miss, or junk.
HOSTILE = ["", " ", "a b", "a:b", "a{b", "a}b", "{a}", "a|b", "a*", "a?", "[a]", "a\\b", "é", "١٢", "a\n",
           "x" * 300, "\x00", "-1", "+1", "1_0", "1.0", "0x1f"]
junk = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(), st.sampled_from(HOSTILE),
    st.lists(st.integers(), max_size=2),
)
ids = st.one_of(st.integers(min_value=0, max_value=2**63 - 1), st.integers(), junk)
class_ids = st.one_of(st.from_regex(r"[0-9a-f]{16}", fullmatch=True), junk)
codes = st.one_of(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", fullmatch=True), junk)
zones = st.one_of(st.sampled_from(["UTC", "Europe/London", "America/Argentina/Buenos_Aires", "Etc/GMT+5"]),
                  st.from_regex(ZONE, fullmatch=True), junk)
days = st.one_of(st.dates().map(lambda d: d.isoformat()), st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", fullmatch=True),
                 junk)
kinds = st.one_of(st.sampled_from(["profile", "region", "channel"]), junk)


def built(builder, *args):
    """The key, or None when the builder refused the parts (the only error it may raise)."""
    try:
        key = builder(*args)
    except keys.BadKeyPart:
        return None
    assert is_key(key), key
    return key


@EXAMPLES
@given(ids)
@example(True)
@example("1:*")
@example(-1)
@example(2**63)
def test_profile_keys(profile_id):
    key = built(keys.profile_key, profile_id)
    assert (key is not None) == (type(profile_id) is int and 0 <= profile_id < 2**63)
    if key is not None:
        assert keys.profile_id_of(key) == profile_id
        assert keys.flight_key(key) == key + ":flight" and is_key(keys.flight_key(key))


@EXAMPLES
@given(class_ids)
@example("0123456789abcdef:x")
@example("0123456789ABCDEF")
def test_class_keys(class_id):
    key = built(keys.class_key, class_id)
    assert (key is not None) == (isinstance(class_id, str) and re.fullmatch(r"[0-9a-f]{16}", class_id) is not None)
    if key is not None:
        assert keys.class_id_of(key) == class_id


@EXAMPLES
@given(codes)
@example("EU-WEST}")
@example("EU WEST")
def test_region_class_set_keys(code):
    key = built(keys.region_classes_key, code)
    assert (key is not None) == (isinstance(code, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", code)
                                 is not None)


@EXAMPLES
@given(zones, days, ids)
@example("Europe/London}", "2026-01-01", 1)
@example("Europe/London", "2026-01-01}|x", 1)
@example("UTC|2026-01-01", "2026-01-01", 1)
def test_epg_keys_keep_one_hash_tag_and_read_back(tz, day, channel_id):
    key = built(keys.epg_fragment_key, tz, day, channel_id)
    day_key = built(keys.epg_day_key, tz, day)
    if key is not None:
        assert keys.epg_fragment_of(key) == (tz, day, channel_id)
        assert day_key is not None and key.startswith(day_key + ":")
        # The hash tag is the (zone, day): every fragment of one guide is in one slot.
        assert key[key.index("{") + 1 : key.index("}")] == f"{tz}|{day}"


@EXAMPLES
@given(kinds, ids)
def test_marker_and_edge_keys(kind, at):
    dirty = built(keys.dirty_key, kind)
    edge = built(keys.edge_key, kind, at)
    assert (dirty is not None) == (isinstance(kind, str) and re.fullmatch("[a-z]{1,16}", kind) is not None)
    if edge is not None:
        assert dirty is not None and type(at) is int


@EXAMPLES
@given(st.one_of(st.from_regex(r"[a-z][a-z0-9_]{0,20}(:[a-z]{1,8}){0,2}", fullmatch=True), junk))
def test_histogram_keys(name):
    built(keys.histogram_key, name)
    built(keys.histogram_samples_key, name)


def test_every_declared_metric_names_a_key():
    from core import metrics

    for metric in metrics.METRICS.values():
        if isinstance(metric, metrics.Histogram):
            assert is_key(keys.histogram_key(metric.short))
            assert is_key(keys.histogram_samples_key(metric.samples_name(tuple("x" for _ in metric.labels))))


def test_fixed_keys_are_in_the_grammar():
    for builder in (keys.inflight_key, keys.bell_key, keys.edges_pending_key, keys.edges_scanned_key,
                    keys.counters_key, keys.gauges_key, keys.verify_cursor_key):
        assert is_key(builder()), builder


def test_a_flight_key_is_only_beside_our_own_keys():
    with pytest.raises(keys.BadKeyPart):
        keys.flight_key("other-app:session:1")
