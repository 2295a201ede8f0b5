"""Answers built in-process from Postgres when Redis cannot serve (nothing is stored)."""
from __future__ import annotations

from datetime import UTC, date, datetime

from core import selectors, services
from core.builders import Entry, assemble_epg, build_epg_fragment, epoch_ms, local_day_bounds

from .entries import ClassEntry, EpgEntry, ProfileEntry, epg_etag, parse_class, parse_profile


def _fields(entry: Entry, built_at: int) -> dict[bytes, bytes]:
    out = {b"version": str(entry.version).encode(), b"built_at": str(built_at).encode()}
    out.update({k.encode(): v for k, v in entry.fields.items()})
    return out


def viewer(profile_id: int, now: float) -> tuple[ProfileEntry, ClassEntry | None]:
    """What the rebuild would write for this viewer (services' builds), without writing it."""
    moment = datetime.fromtimestamp(now, UTC)
    entries, classes = services.profile_entries([profile_id], moment)
    if profile_id not in entries:
        return ProfileEntry(profile_id, True), None
    built = epoch_ms(moment)
    profile = parse_profile(profile_id, _fields(entries[profile_id], built))
    cls = classes[profile_id]
    head = selectors.region_by_code(cls.region)
    if head is None:
        return profile, None
    entry = services.class_entries(head, [cls], moment)[cls.id]
    return profile, parse_class(_fields(entry, built))


def epg(cls: ClassEntry, day: str, now: float) -> EpgEntry:
    the_day = date.fromisoformat(day)
    start, end = local_day_bounds(the_day, cls.tz)
    heads = {c.id: (c, v) for c, v in selectors.channel_heads(cls.allowed_ids)}
    progs = selectors.programmes(list(heads), start, end)
    frags, tags = [], []
    for cid in cls.allowed_ids:
        if cid in heads:
            channel, version = heads[cid]
            frags.append(build_epg_fragment(channel, progs.get(cid, ()), the_day, cls.tz))
            tags.append(f"{version}.pg".encode())
    body = assemble_epg(the_day, cls.tz, frags)
    return EpgEntry(body, epg_etag(cls.etag, day, tags), cls.valid_until)
