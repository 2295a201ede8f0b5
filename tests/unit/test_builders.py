"""Pure builders: profile hash, class entries, EPG fragments and their assembly."""
from datetime import UTC, date, datetime, timedelta

import orjson

from core.builders import (
    ChannelFacts,
    ProfileFacts,
    ProgrammeFacts,
    assemble_epg,
    build_class,
    build_epg_fragment,
    build_profile,
    local_day_bounds,
    oversized_fields,
    profile_class,
)
from core.entitlement import LicenceRule, SubscriptionTerm

NOW = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
CHANNELS = [
    ChannelFacts(1, "news", "News 24", 1),
    ChannelFacts(2, "sport1", "Sport Één", 2, frozenset({"sports"})),
    ChannelFacts(3, "movies", "Cinéma", 3, frozenset({"premium"})),
]
LICENCES = [
    LicenceRule("news", "EU-WEST"),
    LicenceRule("sport1", "EU-WEST", "allow", frozenset({"fibra"}), valid_until=NOW + 2 * HOUR),
    LicenceRule("movies", "US-EAST"),
]


def facts(**kw):
    base = dict(id=7, version=3, region="EU-WEST", isp="fibra", tz="Europe/London")
    base.update(kw)
    return ProfileFacts(**base)


def test_profile_hash_fields_stay_compact():
    subs = (
        SubscriptionTerm("sports", NOW - HOUR, NOW + 5 * HOUR),
        SubscriptionTerm("premium", NOW - 9 * HOUR, NOW - HOUR),
        SubscriptionTerm("kids", NOW + HOUR),
    )
    entry = build_profile(facts(subscriptions=subs), NOW)
    assert entry.version == 3
    assert entry.fields["region"] == b"EU-WEST"
    assert orjson.loads(entry.fields["subscriptions"]) == ["sports"]
    # Next flip: the kids plan starts in an hour.
    assert int(entry.fields["valid_until"]) == int((NOW + HOUR).timestamp())
    assert entry.fields["class"] == profile_class(facts(subscriptions=subs), NOW).id.encode()
    assert oversized_fields(entry.fields) == []
    many = tuple(SubscriptionTerm(p, NOW - HOUR) for p in ["basic", "premium", "sports", "movies", "kids", "news"])
    assert oversized_fields(build_profile(facts(subscriptions=many), NOW).fields) == []


def test_same_facts_same_class_across_profiles():
    subs = (SubscriptionTerm("sports", NOW - HOUR),)
    a = build_profile(facts(id=1, subscriptions=subs), NOW)
    b = build_profile(facts(id=2, subscriptions=subs), NOW)
    assert a.fields["class"] == b.fields["class"]


def test_oversized_field_is_reported():
    assert oversized_fields({"x": b"a" * 65, "y": b"b"}) == ["x"]


def test_class_entry_orders_channels_and_gives_reasons():
    cls = profile_class(facts(subscriptions=(SubscriptionTerm("sports", NOW - HOUR),)), NOW)
    entry = build_class(cls, "Europe/London", 9, CHANNELS, LICENCES, NOW)
    data = orjson.loads(entry.fields["data"])
    assert entry.version == 9
    assert data["allowed"] == ["news", "sport1"] and data["allowed_ids"] == [1, 2]
    assert data["denied"] == {"movies": "geo_blocked"}
    assert int(entry.fields["valid_until"]) == int((NOW + 2 * HOUR).timestamp())


def test_local_day_handles_dst():
    # 2026-03-29: clocks go forward in London; the day has 23 hours.
    start, end = local_day_bounds(date(2026, 3, 29), "Europe/London")
    assert end - start == timedelta(hours=23)


def test_epg_fragment_keeps_programmes_overlapping_the_local_day():
    day = date(2026, 6, 1)
    tokyo_midnight = datetime(2026, 5, 31, 15, 0, tzinfo=UTC)  # 00:00 JST
    progs = [
        ProgrammeFacts(tokyo_midnight - HOUR, tokyo_midnight + HOUR, "Nachtschicht", "Über Nacht"),
        ProgrammeFacts(tokyo_midnight + HOUR, tokyo_midnight + 2 * HOUR, "ニュース", genre="news"),
        ProgrammeFacts(tokyo_midnight - 3 * HOUR, tokyo_midnight - HOUR, "Yesterday"),
    ]
    frag = orjson.loads(build_epg_fragment(CHANNELS[0], progs, day, "Asia/Tokyo"))
    assert [p["title"] for p in frag["programmes"]] == ["Nachtschicht", "ニュース"]
    assert frag["programmes"][1]["start"].startswith("2026-06-01T01:00:00+09:00")


def test_assembly_joins_fragments_without_reserializing():
    frags = [build_epg_fragment(c, [], date(2026, 6, 1), "UTC") for c in CHANNELS]
    doc = assemble_epg(date(2026, 6, 1), "UTC", frags)
    parsed = orjson.loads(doc)
    assert [c["code"] for c in parsed["channels"]] == ["news", "sport1", "movies"]
    assert frags[1] in doc  # the stored bytes, verbatim
