"""Warm-up scopes (the API's and the CLI's one parser) and how a scope is cut into chunks."""
import pytest

from ops import plan
from ops.models import ChunkKind
from ops.scope import BadScope, Scope, parse


def test_a_scope_parses_to_one_canonical_form():
    assert parse({"all": True}) == Scope(all=True)
    assert parse({"regions": ["US", "EU", "US"], "profiles": [3, 1]}) == Scope(regions=("EU", "US"), profiles=(1, 3))
    assert parse({"regions": ["US", "EU"]}).key == parse({"regions": ["EU", "US", "EU"]}).key
    assert parse({"regions": ["EU"]}).key != parse({"profiles": [1]}).key != Scope(all=True).key
    assert parse({"epg_dates": ["2026-12-02"]}).as_dict() == {"epg_dates": ["2026-12-02"]}


@pytest.mark.parametrize(
    "bad, message",
    [
        ([], "must be a JSON object"),
        ({}, "give all, regions, profiles or epg_dates"),
        ({"all": 1}, "all must be true"),
        ({"all": True, "profiles": [1]}, "cannot be combined"),
        ({"profiles": [0]}, "only profile ids"),
        ({"profiles": [1.5]}, "only profile ids"),
        ({"profiles": [True]}, "only profile ids"),
        ({"regions": ["bad code"]}, "only region codes"),
        ({"epg_dates": ["2026-02-30"]}, "only YYYY-MM-DD dates"),
        ({"extra": 1}, "unknown fields: extra"),
        ({"regions": "EU"}, "a list of 1 to 10000"),
        ({"regions": []}, "a list of 1 to 10000"),
    ],
)
def test_a_bad_scope_says_what_is_wrong(bad, message):
    with pytest.raises(BadScope, match=message):
        parse(bad)


def test_classes_come_first_then_profile_spans_then_epg_channels():
    specs = plan.chunks(
        profile_counts={0: 5, 2: 7, 3: 0}, region_count=2, channel_ids=list(range(1, plan.EPG_CHANNELS + 3)),
        fragments_per_channel=4,
    )
    assert [s.kind for s in specs] == [ChunkKind.CLASSES, ChunkKind.PROFILES, ChunkKind.PROFILES,
                                       ChunkKind.EPG, ChunkKind.EPG]
    assert (specs[1].lo, specs[1].hi, specs[1].planned) == (0, plan.SPAN, 5)
    assert (specs[2].lo, specs[2].hi) == (2 * plan.SPAN, 3 * plan.SPAN)  # empty spans have no chunk
    assert (specs[3].lo, specs[3].hi, specs[3].planned) == (1, plan.EPG_CHANNELS + 1, 4 * plan.EPG_CHANNELS)
    assert (specs[4].lo, specs[4].hi, specs[4].planned) == (plan.EPG_CHANNELS + 1, plan.EPG_CHANNELS + 3, 8)
    assert sum(s.planned for s in specs) == 2 + 12 + 4 * (plan.EPG_CHANNELS + 2)


def test_a_scope_with_nothing_in_it_has_no_chunks():
    assert plan.chunks(profile_counts={}, region_count=0, channel_ids=[1, 2], fragments_per_channel=0) == []
