"""What the views read: the local layer, else one Redis round trip, else build or degrade.

Order of resort for every entry: in-process cache (exact by tracking) -> one pipelined
Redis read (stored locally when tracked) -> a single-flight rebuild through core.services,
then read again -> Postgres in-process (Redis down, or an entry that stays unusable).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date

import redis
from django.conf import settings
from django.db import DatabaseError

from core import keys, services
from core.builders import assemble_epg
from workers import edges, events

from . import degraded, local_layer, redis_reads, single_flight
from .connection import RedisDown, ReplyError
from .entries import (
    FRAGMENT_FIELDS,
    BadEntry,
    ClassEntry,
    EpgEntry,
    ProfileEntry,
    epg_etag,
    fragment_parts,
    parse_class,
    parse_profile,
)
from .local_cache import LocalCache
from .metrics import BUILT, DEGRADED, HITS, MISSES

log = logging.getLogger("prewarm.api")

REDIS_ERRORS = (RedisDown, redis.RedisError)


class Unavailable(Exception):
    """Neither Redis nor Postgres could answer."""


@dataclass(frozen=True, slots=True)
class Viewer:
    profile: ProfileEntry
    cls: ClassEntry | None
    degraded: bool = False


def viewer(profile_id: int) -> Viewer:
    """The viewer's profile and entitlement class, fresh at this moment."""
    tracker = local_layer.get()
    tracker.sync()
    cache = tracker.cache
    now = time.time()
    profile = cache.get(profile_id)
    if profile is not None and profile.valid_until > now:
        HITS["profile", "local"] += 1
    else:
        try:
            profile = _profile(cache, profile_id, now)
        except REDIS_ERRORS as exc:
            return _degraded(profile_id, now, exc)
        except DatabaseError as exc:  # a miss needs Postgres to build
            raise Unavailable(f"cannot build the profile entry: {exc}") from None
        if profile is None:
            return _degraded(profile_id, now, None)
    if profile.deleted:
        return Viewer(profile, None)
    cls = cache.get(profile.class_key)
    if cls is not None and cls.valid_until > now:
        HITS["class", "local"] += 1
    else:
        try:
            cls = _class(cache, profile, now)
        except REDIS_ERRORS as exc:
            return _degraded(profile_id, now, exc)
        except DatabaseError as exc:
            raise Unavailable(f"cannot build the class entry: {exc}") from None
        if cls is None:
            return _degraded(profile_id, now, None)
    return Viewer(profile, cls)


def _degraded(profile_id: int, now: float, exc: Exception | None) -> Viewer:
    DEGRADED["profile"] += 1
    if exc is not None:
        log.debug("serving profile %s from Postgres: %s", profile_id, exc)
    try:
        profile, cls = degraded.viewer(profile_id, now)
    except DatabaseError as db_exc:
        raise Unavailable(f"Redis and Postgres both failed: {exc}; {db_exc}") from None
    return Viewer(profile, cls, True)


def _read_hash(cache: LocalCache, key: str):
    """(fields, ticket, covered): the ticket is opened before the read, as commit requires."""
    ticket = cache.begin((key,))
    try:
        replies, covered = redis_reads.call([("HGETALL", key)], tracked=True)
        return redis_reads.hgetall_map(replies[0]), ticket, covered
    except BaseException:
        cache.abandon(ticket)
        raise


def _profile(cache: LocalCache, profile_id: int, now: float) -> ProfileEntry | None:
    key = keys.profile_key(profile_id)
    for attempt in range(2):
        fields, ticket, covered = _read_hash(cache, key)
        try:
            entry = parse_profile(profile_id, fields)
        except BadEntry as exc:
            log.warning("rebuilding malformed %s: %s", key, exc)
            entry = None
        if entry is not None and entry.valid_until > now:
            if covered and settings.PREWARM_API_LOCAL_PROFILES:
                cache.commit(ticket, profile_id, entry)
            else:
                cache.abandon(ticket)
            if attempt == 0:
                HITS["profile", "redis"] += 1
            else:
                BUILT["profile"] += 1
            return entry
        cache.abandon(ticket)
        if attempt == 0:
            MISSES["profile"] += 1
            single_flight.run(key, lambda: _rebuild_profile(profile_id))
    return None


def _class(cache: LocalCache, profile: ProfileEntry, now: float) -> ClassEntry | None:
    key = profile.class_key
    for attempt in range(2):
        fields, ticket, covered = _read_hash(cache, key)
        try:
            entry = parse_class(fields)
        except BadEntry as exc:
            log.warning("rebuilding malformed %s: %s", key, exc)
            entry = None
        if entry is not None and entry.valid_until > now:
            if covered:
                cache.commit(ticket, key, entry, weight=len(fields.get(b"data", b"")) * 3)
            else:
                cache.abandon(ticket)
            if attempt == 0:
                HITS["class", "redis"] += 1
            else:
                BUILT["class"] += 1
            return entry
        cache.abandon(ticket)
        if attempt == 0:
            MISSES["class"] += 1
            single_flight.run(key, lambda entry=entry: _rebuild_class(profile, stale=entry))
    return None


def _rebuild_profile(profile_id: int) -> None:
    _queue_edges(events.PROFILE, services.rebuild_profiles([profile_id]))


def _queue_edges(kind: str, outcome) -> None:
    # Its entries' edges are queued as a worker's rebuild queues them: a class this build
    # is the first to write has a licence window no region rebuild may have seen. Best
    # effort: with the broker down the answer still goes out (beat's scan queues the edges
    # of its window, and a reader treats an entry past its valid_until as a miss).
    try:
        edges.queue_built(kind, outcome)
    except Exception as exc:
        log.warning("could not queue the time edges of a %s rebuild: %s", kind, exc)


def _rebuild_class(profile: ProfileEntry, stale: ClassEntry | None) -> None:
    # A profile rebuild registers its class and builds it when absent; a class that exists
    # but has expired (a licence window closed) is rebuilt with its region.
    _rebuild_profile(profile.profile_id)
    if stale is not None:
        from core import selectors

        head = selectors.region_by_code(profile.region)
        if head is not None:
            _queue_edges(events.REGION, services.rebuild_regions([head[0]]))


def epg(view: Viewer, day: str) -> tuple[EpgEntry, bool]:
    """The viewer's programme guide for a local day; (entry, served_from_postgres)."""
    cls = view.cls
    now = time.time()
    if not view.degraded:
        cache = local_layer.get().cache
        local_key = local_layer.epg_key(view.profile.class_id, day)
        entry = cache.get(local_key)
        if entry is not None and entry.valid_until > now:
            HITS["epg", "local"] += 1
            return entry, False
        try:
            entry = _epg(cache, view, day, local_key)
        except REDIS_ERRORS as exc:
            log.debug("serving EPG from Postgres: %s", exc)
            entry = None
        except DatabaseError as exc:
            raise Unavailable(f"cannot build the programme guide: {exc}") from None
        if entry is not None:
            return entry, False
    DEGRADED["epg"] += 1
    try:
        return degraded.epg(cls, day, now), True
    except DatabaseError as exc:
        raise Unavailable(f"cannot build the programme guide: {exc}") from None


def _epg(cache: LocalCache, view: Viewer, day: str, local_key) -> EpgEntry | None:
    cls, class_key = view.cls, view.profile.class_key
    frag_keys = [keys.epg_fragment_key(cls.tz, day, cid) for cid in cls.allowed_ids]
    commands = [("HMGET", k, *FRAGMENT_FIELDS) for k in frag_keys]
    for attempt in range(2):
        ticket = cache.begin((class_key, *frag_keys))
        # The class entry we assemble from must be the cached one *after* the ticket opened:
        # any later change to it kills the ticket. Otherwise serve without storing.
        if ticket is not None and cache.get(class_key) is not cls:
            cache.abandon(ticket)
            ticket = None
        try:
            replies, covered = redis_reads.call(commands, tracked=True) if commands else ([], True)
        except BaseException:
            cache.abandon(ticket)
            raise
        datas, tags, missing = [], [], []
        for cid, values in zip(cls.allowed_ids, replies):
            if isinstance(values, ReplyError):
                cache.abandon(ticket)
                raise RedisDown(f"Redis error: {values}")
            try:
                parts = fragment_parts(values)
            except BadEntry:
                parts = None
            if parts is None:
                missing.append(cid)
                continue
            if parts[0]:
                datas.append(parts[0])
            tags.append(parts[1])
        if not missing:
            body = assemble_epg(date.fromisoformat(day), cls.tz, datas)
            entry = EpgEntry(body, epg_etag(cls.etag, day, tags), cls.valid_until)
            if covered:
                cache.commit(ticket, local_key, entry, weight=len(body))
            else:
                cache.abandon(ticket)
            if attempt == 0:
                HITS["epg", "redis"] += 1
            else:
                BUILT["epg"] += 1
            return entry
        cache.abandon(ticket)
        if attempt == 0:
            MISSES["epg"] += 1
            # Only the asked (zone, day): the single flight is per (zone, day), and building every
            # kept window of the missing channels cost a cold guide (zones x days) builds.
            single_flight.run(keys.epg_day_key(cls.tz, day), lambda missing=missing: services.rebuild_epg(
                missing, days=[date.fromisoformat(day)], zones=[cls.tz]))
    return None
