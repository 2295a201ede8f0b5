"""Rebuild services: read fresh rows, build entries, write them versioned. Used by workers and
by views on a miss; each call costs one query set and one Redis pipeline per family."""
from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings

from . import keys, metrics, selectors
from .builders import (
    LISTPACK_VALUE_LIMIT,
    Entry,
    build_class,
    build_epg_fragment,
    build_profile,
    epoch_ms,
    oversized_fields,
    profile_class,
)
from .cache_store import Pending, Store
from .entitlement import EntitlementClass
from .redis_conn import client

log = logging.getLogger(__name__)

SEP = "\x1f"
# In a region's class set only when the set was filled from Postgres. Eviction drops a whole
# key, and the next profile rebuild then starts a new set with one member and no marker:
# a set without it may be missing classes, so a region rebuild asks Postgres instead.
COMPLETE_MEMBER = b"\x00complete"


@dataclass
class Outcome:
    written: int = 0
    refused: int = 0  # an entry already held newer data
    deleted: int = 0
    # epoch second -> ids whose entries change then with no write (their `valid_until`)
    edges: dict[int, set[int]] = field(default_factory=dict)
    # epoch second -> region ids: the edges of class entries a profile rebuild wrote on the
    # way (a class no region rebuild knew yet), to be queued as region edges
    class_edges: dict[int, set[int]] = field(default_factory=dict)
    read_at: float | None = None  # epoch seconds when the rows were read (the pipeline's hops)
    now: datetime | None = None  # the moment the rebuild decided time windows at

    def counts(self) -> dict[str, int]:
        return {"written": self.written, "refused": self.refused, "deleted": self.deleted}


def _edges(entries: dict[int, Entry]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = defaultdict(set)
    for i, entry in entries.items():
        if at := entry.fields.get("valid_until"):
            # valid_until is the moment floored to the second: it has passed by the next one.
            out[int(at) + 1].add(i)
    return dict(out)


def utcnow() -> datetime:
    return datetime.now(UTC)


@functools.cache
def _store_for(redis_client) -> Store:
    return Store(redis_client)


def store() -> Store:
    return _store_for(client())


def class_member(cls: EntitlementClass) -> str:
    """How a class is remembered in its region's set: enough to rebuild it."""
    return cls.isp + SEP + "+".join(sorted(cls.plans))


def class_from_member(region: str, member: bytes | str) -> EntitlementClass:
    text = member.decode() if isinstance(member, bytes) else member
    isp, _, plans = text.partition(SEP)
    return EntitlementClass(region, isp, frozenset(p for p in plans.split("+") if p))


def _tally(outcome: Outcome, results: list[bool]) -> Outcome:
    outcome.written += sum(results)
    outcome.refused += len(results) - sum(results)
    return outcome


def _count(family: str, outcome: Outcome) -> None:
    metrics.STORE.add(
        [
            (metrics.REBUILDS, (family,), outcome.written),
            (metrics.REBUILDS_REFUSED, (family,), outcome.refused),
            (metrics.ENTRIES_DELETED, (family,), outcome.deleted),
        ]
    )


def _build_profiles(facts: dict, now: datetime):
    classes = {pid: profile_class(f, now) for pid, f in facts.items()}
    entries = {pid: build_profile(f, now, classes[pid]) for pid, f in facts.items()}
    region_versions = {f.region: f.region_version for f in facts.values()}
    return entries, classes, region_versions


def profile_entries(ids: Iterable[int], now: datetime) -> tuple[dict[int, Entry], dict[int, EntitlementClass]]:
    """What the profile entries of these ids must hold now (absent ids: no row), built in
    memory: the rebuild writes them, the verifier compares them."""
    entries, classes, _ = _build_profiles(selectors.profile_facts(ids), now)
    return entries, classes


def _clock(now: datetime | None, not_before: datetime | None) -> datetime:
    """The moment a rebuild decides time windows at: given, or Postgres' clock; never
    before `not_before` (an edge's moment, when Postgres' clock is behind the worker's)."""
    now = now or selectors.db_now()
    return max(now, not_before) if not_before else now


def rebuild_profiles(
    ids: Iterable[int], *, now: datetime | None = None, not_before: datetime | None = None
) -> Outcome:
    """One query round trip (the clock with the rows, unless `now` is given) and one Redis
    round trip (entries and class checks) when every id has its row and class entry."""
    return _finish_profiles(_start_profiles(ids, now, not_before))


def rebuild_profile_batches(batches: Iterable[Iterable[int]]) -> Iterator[Outcome]:
    """The outcome of each batch as rebuild_profiles gives it, each batch read from Postgres
    and built while Redis still runs the previous one's writes (a bulk warm-up: the two
    waits overlap instead of adding up). A batch that is a `range` is read as a span of ids:
    the profiles it holds, by a range scan (ids without a row are not tombstoned)."""
    waiting = None
    try:
        for ids in batches:
            started = _start_profiles(ids, None, None)
            previous, waiting = waiting, started
            if previous is not None:
                yield _finish_profiles(previous)
        if waiting is not None:
            last, waiting = waiting, None
            yield _finish_profiles(last)
    finally:
        if waiting is not None:  # an error, or the caller stopped: nothing reads its replies
            waiting.pending.close()


@dataclass
class _ProfilesSent:
    """A profile batch read, built and sent to Redis, its replies not read yet."""

    ids: set[int]
    now: datetime
    read_at: float
    entries: dict[int, Entry]
    ordered: list[EntitlementClass]
    region_versions: dict[str, int]
    pending: Pending


def _start_profiles(ids: Iterable[int], now: datetime | None, not_before: datetime | None) -> _ProfilesSent:
    if isinstance(ids, range) and ids.step == 1 and now is None:
        now, facts = selectors.profile_facts_between(ids.start, ids.stop)
        ids = set(facts)
    else:
        ids = set(ids)
        now, facts = selectors.profile_facts_now(ids) if now is None else (now, selectors.profile_facts(ids))
    now = _clock(now, not_before)
    read_at = time.time()
    entries, classes, region_versions = _build_profiles(facts, now)
    _warn_if_not_compact(entries)
    ordered = sorted(set(classes.values()), key=lambda c: c.id)
    pending = store().send_many_then(
        ((keys.profile_key(p), e) for p, e in entries.items()), epoch_ms(now), _check_classes(ordered)
    )
    return _ProfilesSent(ids, now, read_at, entries, ordered, region_versions, pending)


def _finish_profiles(sent: _ProfilesSent) -> Outcome:
    written, held = sent.pending.result()
    outcome = _tally(Outcome(read_at=sent.read_at, now=sent.now), written)
    outcome.edges = _edges(sent.entries)
    gone = selectors.deleted_versions("profile", sent.ids - sent.entries.keys())
    store().tombstone_many(((keys.profile_key(p), v) for p, v in gone.items()), epoch_ms(sent.now))
    outcome.deleted = len(gone)
    outcome.class_edges = _build_missing_classes(sent.ordered, held[1::2], sent.region_versions, sent.now)
    _count("profile", outcome)
    return outcome


_warned_compact = False


def _warn_if_not_compact(entries: dict[int, Entry]) -> None:
    """Say once per process when a profile hash would leave Redis' compact encoding
    (~3.7x the memory); raise hash-max-listpack-value or shorten codes then."""
    global _warned_compact
    if _warned_compact:
        return
    for pid, entry in entries.items():
        if max(map(len, entry.fields.values())) <= LISTPACK_VALUE_LIMIT:
            continue  # the common case, decided in C: field names are short constants
        if big := oversized_fields(entry.fields):
            _warned_compact = True
            log.warning("profile %s: fields %s exceed %d bytes; its Redis hash will not be a listpack",
                        pid, ", ".join(big), LISTPACK_VALUE_LIMIT)
            return


def _check_classes(ordered: list[EntitlementClass]) -> list[tuple]:
    """Register each class in its region's set and ask which version of it Redis holds."""
    commands = []
    for cls in ordered:
        commands.append(("SADD", keys.region_classes_key(cls.region), class_member(cls)))
        commands.append(("HGET", keys.class_key(cls.id), "version"))
    return commands


def _build_missing_classes(
    ordered: list[EntitlementClass], held: list, region_versions: dict[str, int], now: datetime
) -> dict[int, set[int]]:
    """Build the classes Redis does not hold at the region version the profiles were read
    with (an entry left by a deleted region with the same code, or one whose region
    rebuild is still on its way); returns their edges (epoch second -> region ids)."""
    missing = [
        cls for cls, version in zip(ordered, held) if version is None or int(version) < region_versions[cls.region]
    ]
    by_region: dict[str, list[EntitlementClass]] = defaultdict(list)
    for cls in missing:
        by_region[cls.region].append(cls)
    found: dict[int, set[int]] = defaultdict(set)
    for region_code, region_classes in by_region.items():
        head = selectors.region_by_code(region_code)
        if head is not None:
            for at, ids in _write_classes(head, region_classes, now).edges.items():
                found[at] |= ids
    return dict(found)


def class_entries(
    head: tuple[int, str, str, int], classes: Iterable[EntitlementClass], now: datetime
) -> dict[str, Entry]:
    """class id -> what its entry must hold now, for classes of the region `head` names."""
    region_id, _code, tz, version = head  # version first: the rows below are at least as new
    channels = selectors.channels()
    licences = selectors.licences([region_id])
    return {c.id: build_class(c, tz, version, channels, licences, now) for c in classes}


def _write_classes(head: tuple[int, str, str, int], classes: list[EntitlementClass], now: datetime) -> Outcome:
    """Write the classes' entries; the outcome's edges are the region's (licence windows)."""
    entries = class_entries(head, classes, now)
    read_at = time.time()
    written = store().write_many(((keys.class_key(c), e) for c, e in entries.items()), epoch_ms(now))
    outcome = _tally(Outcome(read_at=read_at), written)
    outcome.edges = {at: {head[0]} for at in _edges(entries)}
    return outcome


def rebuild_regions(
    region_ids: Iterable[int] | None = None, *, now: datetime | None = None, not_before: datetime | None = None
) -> Outcome:
    """Rebuild every known entitlement class of the regions: work per class, not per viewer."""
    now = _clock(now, not_before)
    total = Outcome(now=now)
    for head in selectors.region_heads(None if region_ids is None else set(region_ids)):
        set_key = keys.region_classes_key(head[1])
        members = client().smembers(set_key)
        if COMPLETE_MEMBER in members:
            classes = [class_from_member(head[1], m) for m in members if m != COMPLETE_MEMBER]
        else:
            # The set is gone or partial (evicted under allkeys-lru, then restarted by one
            # profile rebuild; or never built): ask Postgres, so no class entry is left
            # stale, and remember the answer as complete.
            found = selectors.region_classes(head[0], now)
            classes = [EntitlementClass(head[1], isp, frozenset(plans)) for isp, plans in found]
            client().sadd(set_key, *[class_member(c) for c in classes], COMPLETE_MEMBER)
        if classes:
            outcome = _write_classes(head, classes, now)
            total.read_at = total.read_at or outcome.read_at
            total.written += outcome.written
            total.refused += outcome.refused
            for at, ids in outcome.edges.items():
                total.edges.setdefault(at, set()).update(ids)
    _count("class", total)
    return total


def epg_days(tz: str, now: datetime) -> list:
    """The local days kept warm in a time zone: yesterday .. today + PREWARM_EPG_DAYS_AHEAD."""
    today = now.astimezone(ZoneInfo(tz)).date()
    return [today + timedelta(days=d) for d in range(-1, settings.PREWARM_EPG_DAYS_AHEAD + 1)]


def epg_windows(now: datetime) -> list[tuple[str, date]]:
    """Every kept (time zone in use, local day)."""
    return [(tz, day) for tz in selectors.timezones() for day in epg_days(tz, now)]


def epg_entries(
    channel_ids: Iterable[int], windows: list[tuple[str, date]], now: datetime
) -> tuple[dict[str, Entry], set[int]]:
    """Fragment key -> what it must hold, for these channels and windows; and the ids of
    the channels that exist."""
    heads = selectors.channel_heads(set(channel_ids))  # versions first
    present = {c.id for c, _ in heads}
    if not windows or not heads:
        return {}, present
    start = now - timedelta(days=3)
    end = now + timedelta(days=settings.PREWARM_EPG_DAYS_AHEAD + 3)
    progs = selectors.programmes([c.id for c, _ in heads], start, end)
    entries = {
        keys.epg_fragment_key(tz, day.isoformat(), channel.id): _fragment_entry(
            version, build_epg_fragment(channel, progs.get(channel.id, ()), day, tz)
        )
        for channel, version in heads
        for tz, day in windows
    }
    return entries, present


def rebuild_epg(
    channel_ids: Iterable[int],
    *,
    now: datetime | None = None,
    not_before: datetime | None = None,
    days: Iterable[date] | None = None,
    zones: Iterable[str] | None = None,
) -> Outcome:
    """Rewrite the EPG fragments of these channels for every kept (time zone, day), or only
    the kept ones of `days` and `zones`."""
    ids = set(channel_ids)
    now = _clock(now, not_before)
    built = epoch_ms(now)
    windows = epg_windows(now)
    if days is not None:
        wanted = set(days)
        windows = [(tz, day) for tz, day in windows if day in wanted]
    if zones is not None:
        wanted_zones = set(zones)
        windows = [(tz, day) for tz, day in windows if tz in wanted_zones]
    if not windows:
        return Outcome(now=now)
    entries, present = epg_entries(ids, windows, now)
    outcome = _tally(Outcome(read_at=time.time(), now=now), store().write_many(entries.items(), built))
    gone = selectors.deleted_versions("channel", ids - present)
    store().tombstone_many(
        ((keys.epg_fragment_key(tz, day.isoformat(), cid), v) for cid, v in gone.items() for tz, day in windows),
        built,
    )
    outcome.deleted = len(gone)
    _count("epg", outcome)
    return outcome


def _fragment_entry(version: int, frag: bytes) -> Entry:
    return Entry(version, {"data": frag})
