"""core.drift: verdicts on one entry, the in-flight rule, the rolling slices, the report; and the key parsers."""
import pytest

from core import drift, keys
from core.builders import Entry
from core.drift import MISSING, ORPHAN, STALE, Finding, Report, Slice, judge, next_slice

ENTRY = Entry(7, {"region": b"EU-WEST", "isp": b"fibra", "valid_until": b"1700000000"})
RIGHT = {b"version": b"7", b"built_at": b"1699999999123", b"region": b"EU-WEST", b"isp": b"fibra",
         b"valid_until": b"1700000000"}


def test_an_entry_equal_but_for_built_at_is_right():
    assert judge("profile", "k", ENTRY, {**RIGHT, b"built_at": b"1"}) is None


def test_no_entry_where_the_row_exists_is_missing():
    assert judge("profile", "k", ENTRY, {}) == Finding("profile", MISSING, "k", (), "no entry")


def test_a_changed_field_a_newer_version_and_an_extra_field_are_named():
    found = judge("profile", "k", ENTRY, {**RIGHT, b"isp": b"cheapnet", b"version": b"8", b"junk": b"x"})
    assert (found.kind, found.fields) == (STALE, ("isp", "junk", "version"))
    assert found.valid_until == 1700000000.0
    assert judge("profile", "k", ENTRY, {k: v for k, v in RIGHT.items() if k != b"isp"}).fields == ("isp",)


def test_tombstones_and_live_entries_against_rows():
    tombstone = {b"deleted": b"1", b"built_at": b"5"}
    assert judge("profile", "k", ENTRY, tombstone).why == "tombstone where the row exists"
    assert judge("profile", "k", None, tombstone) is None  # the row is gone and so is the entry
    assert judge("profile", "k", None, {}) is None
    gone = judge("profile", "k", None, RIGHT)
    assert (gone.kind, gone.fields, gone.why) == (STALE, ("deleted",), "live entry where the row is gone")


def test_a_value_that_is_not_a_hash_is_stale():
    assert judge("class", "k", ENTRY, ValueError("WRONGTYPE")).fields == ("type",)


def test_orphans_are_live_entries_only():
    assert drift.orphan("epg", "k", {b"data": b"{}", b"version": b"1"}, "why").kind == ORPHAN
    assert drift.orphan("epg", "k", {b"deleted": b"1"}, "why") is None  # it expires by itself
    assert drift.orphan("epg", "k", {}, "why") is None


@pytest.mark.parametrize(
    "now, grace, expected",
    [(1700000000, 5, True), (1700000004.9, 5, True), (1700000005, 5, False), (1699999999, 5, False)],
)
def test_an_entry_expired_less_than_the_grace_ago_is_in_flight(now, grace, expected):
    stale = judge("profile", "k", ENTRY, {**RIGHT, b"isp": b"other"})
    assert drift.in_flight(stale, now, grace) is expected


def test_missing_entries_and_entries_without_valid_until_are_never_in_flight():
    assert not drift.in_flight(Finding("profile", MISSING, "k"), 10, 5)
    assert not drift.in_flight(Finding("epg", STALE, "k", ("data",)), 10, 5)


def cover(bounds, slices):
    cursor, seen = None, []
    for _ in range(slices + 1):
        s = next_slice(cursor, bounds, slices)
        seen.append(s)
        cursor = s.end
        if s.last:
            return seen
    raise AssertionError(f"no last slice in {slices} steps: {seen}")


@pytest.mark.parametrize("bounds, slices", [((1, 1_000_000), 288), ((1, 10), 4), ((5, 5), 288), ((100, 109), 3)])
def test_the_slices_cover_the_whole_id_range_in_the_stated_number(bounds, slices):
    seen = cover(bounds, slices)
    assert len(seen) <= slices
    assert seen[0].first and not any(s.first for s in seen[1:])
    assert seen[0].start == bounds[0] and seen[-1].end > bounds[1]
    assert all(a.end == b.start for a, b in zip(seen, seen[1:]))  # no gap, no overlap


def test_after_the_last_slice_a_new_cycle_starts_at_the_lowest_id():
    assert next_slice(11, (1, 10), 4) == Slice(1, 4, True, False)
    assert next_slice(0, (3, 10), 4) == Slice(3, 5, True, False)  # the low ids are gone
    assert next_slice(None, None, 4) is None


def test_a_cycle_of_24_hours_at_one_slice_every_5_minutes_has_288_slices():
    assert drift.slices_per_cycle(24 * 3600, 300) == 288
    assert drift.slices_per_cycle(1, 300) == 1


def test_report_counts_examples_and_json_shape():
    report = Report("all", ("profile", "epg"), checked={"profile": 10, "epg": 3},
                    orphans_checked={"profile": True, "epg": True})
    report.findings = [Finding("profile", STALE, f"p{i}", ("isp",), "differs") for i in range(7)]
    report.findings.append(Finding("epg", ORPHAN, "e1", (), "a day outside the kept window"))
    assert report.counts() == {"profile": {"missing": 0, "stale": 7, "orphan": 0},
                               "epg": {"missing": 0, "stale": 0, "orphan": 1}}
    out = report.as_dict()
    assert out["clean"] is False and out["scope"] == "all"
    assert out["families"]["profile"]["checked"] == 10
    assert len(out["families"]["profile"]["examples"]["stale"]) == drift.EXAMPLES
    assert out["families"]["profile"]["examples"]["stale"][0] == {"key": "p0", "fields": ["isp"], "why": "differs"}
    assert "repaired" not in out["families"]["epg"]
    report.repaired, report.refused = {"epg": {"missing": 0, "stale": 0, "orphan": 1}}, {"epg": 0}
    assert report.as_dict()["families"]["epg"]["repaired"]["orphan"] == 1


def test_entry_keys_parse_back_and_other_keys_do_not():
    assert keys.profile_id_of(keys.profile_key(42).encode()) == 42
    assert keys.profile_id_of(keys.flight_key(keys.profile_key(42))) is None
    assert list(keys.profile_ids_of([keys.profile_key(1).encode(), keys.profile_key(2).encode() + b":flight",
                                     keys.dirty_key("profile").encode()])) == [1]
    assert keys.class_id_of(keys.class_key("0f3ccd5975882f3b")) == "0f3ccd5975882f3b"
    assert keys.class_id_of(keys.flight_key(keys.class_key("0f3ccd5975882f3b"))) is None
    assert keys.class_id_of(keys.region_classes_key("EU-WEST")) is None
    frag = keys.epg_fragment_key("America/Argentina/Buenos_Aires", "2026-03-29", 7)
    assert keys.epg_fragment_of(frag.encode()) == ("America/Argentina/Buenos_Aires", "2026-03-29", 7)
    assert keys.epg_fragment_of(keys.epg_day_key("UTC", "2026-03-29")) is None
    assert keys.epg_fragment_of(keys.flight_key(frag)) is None
