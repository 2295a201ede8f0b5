"""Demo data generators: deterministic, realistic, and consistent with the domain's rules."""
import random
import re
import zoneinfo
from collections import Counter
from datetime import UTC, datetime, time, timedelta, timezone

import pytest

from core import demo_data as d

NOW = datetime(2026, 6, 1, 20, 0, tzinfo=UTC)
DAY = timedelta(days=1)
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")  # core.models.code_validator
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
REGION_OF = {r.id: r.code for r in d.REGIONS}
ISP_BY_ID = {i.id: i for i in d.ISPS}


def parse_time(text):
    return None if text == "\\N" else datetime.fromisoformat(text.replace("+00", "+00:00"))


def test_reference_data_is_realistic():
    assert len(d.REGIONS) == 6 and len({r.code for r in d.REGIONS}) == 6
    for region in d.REGIONS:
        zoneinfo.ZoneInfo(region.timezone)
        assert CODE.match(region.code)
        assert len(d.isps_in(region.code)) >= 2, region.code
    assert len({r.timezone for r in d.REGIONS}) == 6
    assert len(d.ISPS) == 12 and all(CODE.match(i.code) for i in d.ISPS)
    assert all(set(i.regions) <= set(REGION_OF.values()) for i in d.ISPS)
    assert 4 <= len(d.PLANS) <= 6 and {"basic", "premium", "sports", "movies", "kids"} <= {p.code for p in d.PLANS}
    for ids in ([r.id for r in d.REGIONS], [i.id for i in d.ISPS], [p.id for p in d.PLANS]):
        assert ids == list(range(1, len(ids) + 1))


def test_channels_are_deterministic_unique_and_packaged():
    channels = d.make_channels(42, 150)
    assert channels == d.make_channels(42, 150)
    assert channels != d.make_channels(43, 150)
    assert [c.id for c in channels] == list(range(1, 151))
    assert len({c.code for c in channels}) == len({c.number for c in channels}) == 150
    assert len({c.name for c in channels}) == 150
    assert all(CODE.match(c.code) and len(c.name) <= 100 for c in channels)
    plan_ids = {p.id for p in d.PLANS}
    assert all(set(c.plan_ids) <= plan_ids and len(set(c.plan_ids)) == len(c.plan_ids) for c in channels)
    free = sum(not c.plan_ids for c in channels)
    assert 5 <= free <= 60
    assert len({c.genre for c in channels}) == len(d.GENRE_WEIGHTS)
    assert any(not c.name.isascii() for c in channels)
    # A smaller catalogue is a prefix of the larger one.
    assert d.make_channels(42, 20) == channels[:20]


@pytest.mark.parametrize("seed", [42, 1, 2024])
def test_licences_geoblock_restrict_and_expire(seed):
    channels = d.make_channels(seed, 150)
    licences = d.make_licences(seed, channels, NOW)
    assert licences == d.make_licences(seed, channels, NOW)
    assert [lic.id for lic in licences] == list(range(1, len(licences) + 1))
    pairs = {(lic.channel_id, lic.region_id) for lic in licences}
    assert len(pairs) == len(licences)
    assert {lic.channel_id for lic in licences} == {c.id for c in channels}  # each is shown somewhere
    assert len(pairs) < len(channels) * len(d.REGIONS), "some channel must be geoblocked somewhere"
    modes = Counter(lic.isp_mode for lic in licences)
    assert modes["allow"] and modes["deny"] and modes["any"] > modes["allow"] + modes["deny"]
    for lic in licences:
        assert bool(lic.isp_ids) == (lic.isp_mode != "any")
        assert all(REGION_OF[lic.region_id] in ISP_BY_ID[i].regions for i in lic.isp_ids)
        if lic.valid_from and lic.valid_until:
            assert lic.valid_until > lic.valid_from
    assert any(lic.valid_from and NOW < lic.valid_from < NOW + DAY for lic in licences)
    assert any(lic.valid_until and NOW < lic.valid_until < NOW + DAY for lic in licences)


def test_guide_window_covers_every_local_day_in_every_region():
    for days in (0, 2):
        start, end = d.guide_window(NOW, days)
        for region in d.REGIONS:
            tz = zoneinfo.ZoneInfo(region.timezone)
            today = NOW.astimezone(tz).date()
            first = datetime.combine(today - DAY, time(), tzinfo=tz)
            last = datetime.combine(today + (days + 1) * DAY, time(), tzinfo=tz)
            assert start <= first and last <= end, (region.code, days)


def test_channel_guide_is_back_to_back_with_realistic_programmes():
    start, end = d.guide_window(NOW, 2)
    channels = d.make_channels(42, 150)
    guides = {c.id: list(d.channel_guide(42, c, start, end)) for c in channels}
    assert guides[1] == list(d.channel_guide(42, channels[0], start, end))
    texts = []
    for programmes in guides.values():
        assert programmes[0].starts_at <= start and programmes[-1].ends_at >= end
        for a, b in zip(programmes, programmes[1:]):
            assert a.ends_at == b.starts_at
        for p in programmes:
            assert timedelta(minutes=15) <= p.ends_at - p.starts_at <= timedelta(minutes=120)
            assert p.starts_at.minute % 5 == 0
            assert p.title and len(p.title) <= 200 and p.synopsis
            assert 0 < len(p.genre) <= 40 and 0 < len(p.age_rating) <= 8
            texts.append(p.title + p.synopsis)
    joined = "\n".join(texts)
    for sample in ("é", "ü", "Ñ", "ã"):
        assert sample in joined, sample
    assert JAPANESE.search(joined)
    assert len({p.title for ps in guides.values() for p in ps}) > 500


def test_programme_text_generators_cover_every_genre():
    rng = random.Random(1)
    for genre in d.DURATIONS:
        title = d.programme_title(rng, genre)
        assert title and d.programme_synopsis(rng, genre, title)
        assert d.AGE_RATINGS[genre] and all(15 <= m <= 120 for m in d.DURATIONS[genre])


def test_copy_text_escapes_and_lines_keep_their_fields():
    assert d.copy_text("a\tb\\c\nd\re") == "a\\tb\\\\c\\nd\\re"
    assert d.copy_time(None) == "\\N"
    assert d.copy_time(datetime(2026, 6, 1, 22, 30, tzinfo=timezone(timedelta(hours=2)))) == "2026-06-01 20:30:00+00"
    p = d.ProgrammeSpec(3, NOW, NOW + DAY / 24, "Tab\there", "Line\nbreak", "news", "0+")
    line = d.programme_line(7, p)
    assert line.endswith("\n") and line.count("\n") == 1 and len(line[:-1].split("\t")) == 8


def test_profile_kinds_weights_form_a_distribution():
    kinds = d.profile_kinds()
    assert sum(k.weight for k in kinds) == pytest.approx(1.0)
    assert all(len(set(k.plan_ids)) == len(k.plan_ids) <= 3 for k in kinds)
    assert all(REGION_OF[k.region_id] in ISP_BY_ID[k.isp_id].regions for k in kinds)


def population_rows(count, seed=42, chunk=d.CHUNK_PROFILES):
    pop = d.Population(seed=seed, count=count, now=NOW, chunk=chunk)
    profiles = "".join(text for _, text in pop.profile_blocks())
    subs = "".join(text for _, text in pop.subscription_blocks())
    return profiles, subs


def test_population_is_deterministic_and_profile_data_independent_of_size():
    profiles, subs = population_rows(2000)
    assert (profiles, subs) == population_rows(2000)
    assert population_rows(2000, seed=7) != (profiles, subs)
    assert population_rows(2000, chunk=333)[0] == profiles
    assert population_rows(500)[0] == "".join(profiles.splitlines(keepends=True)[:500])


def test_population_rows_are_consistent_and_realistic():
    n = 20_000
    profiles, subs = population_rows(n, chunk=6_000)
    rows = [line.split("\t") for line in profiles.splitlines()]
    assert [int(r[0]) for r in rows] == list(range(1, n + 1))
    for _, region_id, isp_id in rows:
        assert REGION_OF[int(region_id)] in ISP_BY_ID[int(isp_id)].regions
    regions = Counter(int(r[1]) for r in rows)
    assert len(regions) == 6 and regions[3] > regions[6]  # US-EAST is bigger than LATAM

    sub_rows = [line.split("\t") for line in subs.splitlines()]
    assert all(len(r) == 5 for r in sub_rows)
    assert sorted(int(r[0]) for r in sub_rows) == list(range(1, len(sub_rows) + 1))
    assert 1.4 < len(sub_rows) / n < 1.6
    plans_per_profile = Counter()
    seen = set()
    for _, profile_id, plan_id, starts, expires in sub_rows:
        assert (profile_id, plan_id) not in seen
        seen.add((profile_id, plan_id))
        plans_per_profile[profile_id] += 1
        starts, expires = parse_time(starts), parse_time(expires)
        assert expires is None or expires > starts
    assert max(plans_per_profile.values()) == 3 and len(plans_per_profile) < n  # some have none

    windows = [(parse_time(r[3]), parse_time(r[4])) for r in sub_rows]
    assert any(e and NOW < e <= NOW + DAY for _, e in windows)  # expire within the next day
    assert any(e and NOW < e <= NOW + timedelta(hours=3) for _, e in windows)  # ...and within hours
    assert any(s > NOW for s, _ in windows)  # not started yet
    assert any(e and e <= NOW for _, e in windows)  # already over
    assert any(e is None and s <= NOW for s, e in windows)  # open-ended and active


def test_empty_population():
    assert population_rows(0) == ("", "")
