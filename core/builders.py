"""Pure payload builders: facts in, cache fields and bytes out (orjson). No ORM, Redis or clock."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import orjson

from .entitlement import EntitlementClass, LicenceRule, SubscriptionTerm, active_plans, channel_decisions, next_change

# Redis keeps a hash compact (listpack) only while every value is at most this long.
LISTPACK_VALUE_LIMIT = 64


@dataclass(frozen=True, slots=True)
class ProfileFacts:
    id: int
    version: int
    region: str
    isp: str
    tz: str
    subscriptions: tuple[SubscriptionTerm, ...] = ()
    # The region's version as read with the profile: its class entries must be at least as new.
    region_version: int = 0


@dataclass(frozen=True, slots=True)
class ChannelFacts:
    id: int
    code: str
    name: str
    number: int
    plans: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ProgrammeFacts:
    starts_at: datetime
    ends_at: datetime
    title: str
    synopsis: str = ""
    genre: str = ""
    age_rating: str = ""


@dataclass(frozen=True, slots=True)
class Entry:
    """A cache entry ready for a versioned write: its fields besides version and built_at."""

    version: int
    fields: dict[str, bytes] = field(default_factory=dict)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _epoch_s(moment: datetime | None) -> bytes:
    return str(int(moment.timestamp())).encode() if moment is not None else b""


def profile_class(facts: ProfileFacts, now: datetime) -> EntitlementClass:
    return EntitlementClass(facts.region, facts.isp, active_plans(facts.subscriptions, now))


def build_profile(facts: ProfileFacts, now: datetime, cls: EntitlementClass | None = None) -> Entry:
    """The profile hash of SPEC §3; `class` references the shared channel set (pass `cls`
    when the caller already derived it)."""
    cls = cls or profile_class(facts, now)
    fields = {
        "region": facts.region.encode(),
        "isp": facts.isp.encode(),
        "tz": facts.tz.encode(),
        "subscriptions": orjson.dumps(sorted(cls.plans)),
        "class": cls.id.encode(),
        "valid_until": _epoch_s(next_change(facts.subscriptions, (), now)),
    }
    return Entry(facts.version, fields)


def oversized_fields(fields: Mapping[str, bytes], limit: int = LISTPACK_VALUE_LIMIT) -> list[str]:
    """Names of fields that would push a Redis hash out of its compact encoding."""
    return [name for name, value in fields.items() if len(value) > limit or len(name) > limit]


def build_class(
    cls: EntitlementClass,
    tz: str,
    version: int,
    channels: Sequence[ChannelFacts],
    licences: Iterable[LicenceRule],
    now: datetime,
) -> Entry:
    """What one entitlement class may watch (ordered for the EPG) and why not the rest."""
    licences = [lic for lic in licences if lic.region == cls.region]
    by_code = {c.code: c for c in channels}
    decisions = channel_decisions(cls, licences, {c.code: c.plans for c in channels}, now)
    allowed = sorted((by_code[code] for code, reason in decisions.items() if reason is None), key=lambda c: c.number)
    data = {
        "region": cls.region,
        "isp": cls.isp,
        "plans": sorted(cls.plans),
        "tz": tz,
        "allowed": [c.code for c in allowed],
        "allowed_ids": [c.id for c in allowed],
        "denied": {code: reason for code, reason in sorted(decisions.items()) if reason is not None},
    }
    fields = {
        "data": orjson.dumps(data),
        "valid_until": _epoch_s(next_change((), licences, now)),
    }
    return Entry(version, fields)


def local_day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in a time zone (23 or 25 hours around DST changes)."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time.min, zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time.min, zone).astimezone(UTC)
    return start, end


def build_epg_fragment(channel: ChannelFacts, programmes: Iterable[ProgrammeFacts], day: date, tz: str) -> bytes:
    """One channel's programmes overlapping a local day, as a JSON object."""
    start, end = local_day_bounds(day, tz)
    zone = ZoneInfo(tz)
    items = [
        {
            "start": p.starts_at.astimezone(zone),
            "end": p.ends_at.astimezone(zone),
            "title": p.title,
            "synopsis": p.synopsis,
            "genre": p.genre,
            "age_rating": p.age_rating,
        }
        for p in sorted(programmes, key=lambda p: p.starts_at)
        if p.starts_at < end and p.ends_at > start
    ]
    return orjson.dumps(
        {"id": channel.id, "code": channel.code, "name": channel.name, "number": channel.number, "programmes": items}
    )


def assemble_epg(day: date, tz: str, fragments: Iterable[bytes]) -> bytes:
    """Join pre-serialized channel fragments into one EPG document without re-serializing them."""
    return orjson.dumps(
        {"date": day.isoformat(), "timezone": tz, "channels": [orjson.Fragment(f) for f in fragments]}
    )
