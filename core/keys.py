"""The cache key schema: one function per key family, all under one prefix.

Every key is `<PREWARM_KEY_PREFIX>:<SCHEMA>:...`. Bump SCHEMA when a payload's shape
changes so old and new code never read each other's bytes. Keys read together share a
Redis Cluster hash tag (the part in braces).

Every part is checked before it names a key: a part that came from outside (a code in a URL,
a date, an id from a token, an outbox row or a task message, a field read back from Redis)
holding ':', a brace, '|', a glob character, a space or non-ASCII could name another family's
key, move a key to another hash tag or widen a SCAN pattern. Views and parsers refuse bad
input first with a clear message; these checks are the backstop and raise BadKeyPart.
"""
import re
from collections.abc import Iterable, Iterator

from django.conf import settings

from . import validation

SCHEMA = "v1"

# What each kind of part may be. Ids are bigints, as Postgres keeps them; a class id is what
# core.entitlement makes; zones are IANA names (tzdata's are 1 to 32 characters a segment).
_ID_LIMIT = 2**63
_CLASS_ID = re.compile(r"[0-9a-f]{16}")
_ZONE = re.compile(r"[A-Za-z0-9_+-]{1,32}(?:/[A-Za-z0-9_+-]{1,32}){0,3}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_KIND = re.compile(r"[a-z]{1,16}")
# A metric's storage name (core.metrics): its short name, then `:<label value>` each.
_METRIC = re.compile(r"[a-z][a-z0-9_]{0,63}(?::[A-Za-z0-9_.+-]{0,64}){0,8}")
# PREWARM_KEY_PREFIX: checked by the settings too, so a bad one stops a process at start.
PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class BadKeyPart(ValueError):
    """A key part outside its family's grammar: a caller passed input it had not validated."""


def is_zone_part(tz: str) -> bool:
    """Whether `tz` may name a key (an IANA zone name's shape; whether the zone exists is not asked)."""
    return _ZONE.fullmatch(tz) is not None


def _id(value: object, what: str) -> int:
    # type() is: True is an int, and a str or float id must not slip through a format string.
    if type(value) is not int or not 0 <= value < _ID_LIMIT:
        raise BadKeyPart(f"{what} must be an integer from 0 to 2**63-1, not {value!r:.80}")
    return value


def _match(pattern: re.Pattern, value: object, what: str) -> str:
    if type(value) is not str or pattern.fullmatch(value) is None:
        raise BadKeyPart(f"{what} {value!r:.80} is not a valid key part")
    return value


def prefix() -> str:
    return f"{settings.PREWARM_KEY_PREFIX}:{SCHEMA}"


def profile_key(profile_id: int) -> str:
    """Hash: region, isp, tz, subscriptions, class, version, built_at, valid_until."""
    return f"{prefix()}:profile:{_id(profile_id, 'profile id')}"


def class_key(class_id: str) -> str:
    """Hash: what one entitlement class may watch, and why not the rest."""
    return f"{prefix()}:class:{_match(_CLASS_ID, class_id, 'class id')}"


def flight_key(entry_key: str) -> str:
    """String: the single-flight build lock beside an entry (same hash tag as the entry)."""
    if not entry_key.startswith(f"{prefix()}:"):
        raise BadKeyPart(f"{entry_key!r:.80} is not one of our keys")
    return f"{entry_key}:flight"


def region_classes_key(region_code: str) -> str:
    """Set of class ids seen in a region: what a licence change there must rebuild."""
    if not validation.is_code(region_code):
        raise BadKeyPart(f"region code {region_code!r:.80} is not a valid key part")
    return f"{prefix()}:classes:{region_code}"


def epg_fragment_key(tz: str, day: str, channel_id: int) -> str:
    """Hash: one channel's programmes for one local day, as JSON bytes.

    All fragments of a (timezone, day) share a hash tag: one EPG reads them together.
    """
    return f"{epg_day_key(tz, day)}:{_id(channel_id, 'channel id')}"


def epg_day_key(tz: str, day: str) -> str:
    """Names one (timezone, day) of fragments, in their slot; holds no value itself: a view
    building that day's missing fragments takes its single-flight lock from this name."""
    return f"{prefix()}:epg:{{{_match(_ZONE, tz, 'time zone')}|{_match(_DAY, day, 'day')}}}"


# The coalescing keys share one hash tag: workers.coalesce's claim and settle scripts touch a
# `dirty:` hash and the tickets together, so on a Redis Cluster they must live in one slot.
COALESCING_TAG = "{coalesce}"


def dirty_key(kind: str) -> str:
    """Hash id -> marker: claimed, queued or running rebuilds of entries (workers.coalesce)."""
    return f"{prefix()}:dirty:{COALESCING_TAG}:{_match(_KIND, kind, 'kind')}"


def inflight_key() -> str:
    """Sorted set: tickets of rebuild tasks published and not started, scored by publish
    time in ms (workers.coalesce: producers hold back while enough wait)."""
    return f"{prefix()}:inflight:{COALESCING_TAG}"


def bell_key() -> str:
    """List: rung by each task run that starts, to wake a relay holding rows back."""
    return f"{prefix()}:inflight:{COALESCING_TAG}:bell"


def edge_key(kind: str, at: int) -> str:
    """Set: ids whose rebuild at epoch second `at` is queued (workers.edges sends each once)."""
    return f"{prefix()}:edge:{_match(_KIND, kind, 'kind')}:{_id(at, 'edge second')}"


def edges_pending_key() -> str:
    """Sorted set: `<kind>:<at>` of every edge set, scored by when its task is due (or was
    last sent again): how beat's sweeper finds an edge task that was lost."""
    return f"{prefix()}:edges:pending"


def edges_scanned_key() -> str:
    """String: epoch seconds up to which beat's schedule_due has queued every edge."""
    return f"{prefix()}:edges:scanned"


def filled_key() -> str:
    """String: the id of the last full warm-up job; gone means the cache lost its data (ops.refill)."""
    return f"{prefix()}:filled"


def counters_key() -> str:
    """Hash: every declared counter (core.metrics), field `<name>:<label values>`."""
    return f"{prefix()}:metrics:counters"


def histogram_key(name: str) -> str:
    """Hash: one declared histogram's buckets, count and sum (core.metrics)."""
    return f"{prefix()}:metrics:histogram:{_match(_METRIC, name, 'histogram name')}"


def histogram_samples_key(name: str) -> str:
    """List: the most recent raw observations of one histogram, newest first."""
    return f"{prefix()}:metrics:histogram:{_match(_METRIC, name, 'histogram name')}:samples"


def gauges_key() -> str:
    """Hash: every declared gauge (core.metrics), field `<name>:<label values>`."""
    return f"{prefix()}:metrics:gauges"


def verify_cursor_key() -> str:
    """Hash: where the rolling verification (schedules: prewarm.verify_slice) stands in the
    profile id range, and when its cycle started."""
    return f"{prefix()}:verify:cursor"


# -- reading entry keys back (the verifier scans Redis for them) ---------------------------
# Only the exact shapes built above are entries; anything longer (`...:flight`) is not.


def profile_key_pattern() -> str:
    return f"{prefix()}:profile:*"


def class_key_pattern() -> str:
    return f"{prefix()}:class:*"


def epg_fragment_pattern() -> str:
    return f"{prefix()}:epg:*"


def _tail(key: bytes | str, family: str) -> str | None:
    text = key.decode() if isinstance(key, bytes) else key
    head = f"{prefix()}:{family}:"
    return text[len(head) :] if text.startswith(head) else None


def profile_id_of(key: bytes | str) -> int | None:
    """The id in a `profile:<id>` key; None for any other key."""
    tail = _tail(key, "profile")
    return int(tail) if tail is not None and tail.isascii() and tail.isdigit() else None


def profile_ids_of(found: Iterable[bytes]) -> Iterator[int]:
    """The ids in those of `found` that are `profile:<id>` keys (a million in about a second)."""
    head = f"{prefix()}:profile:".encode()
    cut = len(head)
    for key in found:
        if key.startswith(head) and (tail := key[cut:]).isdigit():
            yield int(tail)


def class_id_of(key: bytes | str) -> str | None:
    """The class id in a `class:<class id>` key; None for any other key."""
    tail = _tail(key, "class")
    return tail if tail and ":" not in tail else None


def epg_fragment_of(key: bytes | str) -> tuple[str, str, int] | None:
    """(tz, day, channel id) of an `epg:{<tz>|<day>}:<channel id>` key; None for any other key."""
    tail = _tail(key, "epg")
    if not tail or not tail.startswith("{") or "}:" not in tail:
        return None
    tag, _, channel = tail[1:].partition("}:")
    tz, sep, day = tag.rpartition("|")
    if not sep or not tz or not channel.isascii() or not channel.isdigit():
        return None
    return tz, day, int(channel)
