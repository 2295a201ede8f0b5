"""Pure decoding of cache hashes into ready-to-serve byte pieces (no Redis, no ORM, no clock).

Everything a warm request needs is computed here once per entry and per process, so the
view itself only concatenates bytes and looks up dicts.
"""
from __future__ import annotations

import hashlib
import math
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson

from core import keys
from core.entitlement import GEO_BLOCKED, ISP_RESTRICTED, NOT_SUBSCRIBED

# A value that can sit between JSON quotes as is: printable ASCII without " or \.
_PLAIN = re.compile(rb"[\x20\x21\x23-\x5b\x5d-\x7e]*")
_DIGITS = re.compile(rb"[0-9]{1,19}")
_CLASS_ID = re.compile(rb"[0-9a-f]{16}")

REASON_MESSAGES = {
    GEO_BLOCKED: "this channel is not licensed in your region",
    ISP_RESTRICTED: "this channel is not available through your internet provider",
    NOT_SUBSCRIBED: "this channel needs a subscription you do not have",
}


class BadEntry(Exception):
    """A cache hash that does not have the expected shape: treat it as a miss."""


def json_str(value: bytes) -> bytes:
    """A JSON string literal for stored bytes, copying them when no escaping is needed."""
    if _PLAIN.fullmatch(value):
        return b'"' + value + b'"'
    return orjson.dumps(value.decode("utf-8", "replace"))


def _int(fields: Mapping[bytes, bytes], name: bytes) -> bytes:
    value = fields.get(name)
    if value is None or not _DIGITS.fullmatch(value):
        raise BadEntry(f"field {name.decode()} is not a number: {value!r}")
    return value


def _valid_until(fields: Mapping[bytes, bytes]) -> tuple[float, bytes]:
    raw = fields.get(b"valid_until", b"")
    if not raw:
        return math.inf, b"null"
    if not _DIGITS.fullmatch(raw):
        raise BadEntry(f"valid_until is not a number: {raw!r}")
    return float(raw), raw


def _is_zone(tz: object) -> bool:
    if not isinstance(tz, str) or not keys.is_zone_part(tz):
        return False
    try:
        zoneinfo.ZoneInfo(tz)  # cached by zoneinfo: a dict lookup after the first
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class ProfileEntry:
    profile_id: int
    deleted: bool
    head: bytes = b""  # '{"id":..,"region":..,...,"class":".."'
    tail: bytes = b""  # ',"version":..,"built_at":..,"valid_until":..}'
    etag: str = ""
    class_id: str = ""
    class_key: str = ""
    region: str = ""
    tz: str = ""
    valid_until: float = math.inf


def parse_profile(profile_id: int, fields: Mapping[bytes, bytes]) -> ProfileEntry | None:
    """None for an absent entry; a deleted marker for a tombstone."""
    if not fields:
        return None
    if fields.get(b"deleted"):
        return ProfileEntry(profile_id, True)
    try:
        version, built_at = _int(fields, b"version"), _int(fields, b"built_at")
        region, isp, tz = fields[b"region"], fields[b"isp"], fields[b"tz"]
        subs, class_id = fields[b"subscriptions"], fields[b"class"]
    except KeyError as exc:
        raise BadEntry(f"profile entry lacks {exc}") from None
    if not (subs.startswith(b"[") and subs.endswith(b"]")):
        raise BadEntry("subscriptions is not a JSON array")
    valid_until, valid_raw = _valid_until(fields)
    head = b"".join(
        [
            b'{"id":', str(profile_id).encode(),
            b',"region":', json_str(region),
            b',"isp":', json_str(isp),
            b',"timezone":', json_str(tz),
            b',"subscriptions":', subs,
            b',"class":', json_str(class_id),
        ]
    )
    tail = b"".join([b',"version":', version, b',"built_at":', built_at, b',"valid_until":', valid_raw, b"}"])
    if not _CLASS_ID.fullmatch(class_id):
        # It names the class key read next: only what core.entitlement makes may.
        raise BadEntry(f"class is not a class id: {class_id[:80]!r}")
    cid = class_id.decode()
    return ProfileEntry(
        profile_id, False, head, tail, f"p{version.decode()}.{built_at.decode()}", cid, keys.class_key(cid),
        region.decode("utf-8", "replace"), tz.decode("utf-8", "replace"), valid_until,
    )


@dataclass(frozen=True, slots=True)
class ClassEntry:
    region: str
    tz: str
    allowed_json: bytes
    allowed_ids: tuple[int, ...]
    decisions: dict[str, tuple[int, bytes]]  # channel code -> (status, response body)
    etag: str
    valid_until: float
    channels_body: bytes = b""  # GET /me/channels: every channel in the lineup with its state


def playback_body(code: str, reason: str | None) -> tuple[int, bytes]:
    if reason is None:
        return 200, orjson.dumps({"channel": code, "allowed": True})
    message = REASON_MESSAGES.get(reason, "you may not watch this channel now")
    return 403, orjson.dumps({"error": {"code": reason, "message": message, "channel": code}})


def parse_class(fields: Mapping[bytes, bytes]) -> ClassEntry | None:
    """Decode once per process (orjson.loads); the answers are serialized here, not per request."""
    if not fields or fields.get(b"deleted"):
        return None
    try:
        version, built_at = _int(fields, b"version"), _int(fields, b"built_at")
        data = orjson.loads(fields[b"data"])
        allowed, allowed_ids, denied = data["allowed"], data["allowed_ids"], data["denied"]
        region, tz = data["region"], data["tz"]
    except (KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise BadEntry(f"class entry malformed: {exc}") from None
    # Its channel ids and zone name the EPG keys read next, and the zone picks the guide's day.
    if not (isinstance(allowed, list) and all(isinstance(c, str) for c in allowed)
            and isinstance(allowed_ids, list) and all(type(i) is int and 0 < i < 2**63 for i in allowed_ids)
            and isinstance(denied, dict) and all(isinstance(r, str) for r in denied.values())
            and isinstance(region, str) and _is_zone(tz)):
        raise BadEntry("class entry malformed: a field has the wrong type or the zone is unknown")
    valid_until, _ = _valid_until(fields)
    decisions = {code: playback_body(code, None) for code in allowed}
    decisions.update({code: playback_body(code, reason) for code, reason in denied.items()})
    return ClassEntry(
        region, tz, orjson.dumps(allowed), tuple(allowed_ids), decisions,
        f"c{version.decode()}.{built_at.decode()}", valid_until, channels_body(allowed, denied),
    )


def channels_body(allowed: list[str], denied: Mapping[str, str]) -> bytes:
    """The lineup with each channel's state, as playback decides it: the allowed channels in
    guide order, then the refused ones by code with the refusal's reason and message."""
    channels = [{"channel": code, "allowed": True, "state": "allowed"} for code in allowed]
    channels += [
        {"channel": code, "allowed": False, "state": reason,
         "message": REASON_MESSAGES.get(reason, "you may not watch this channel now")}
        for code, reason in sorted(denied.items())
    ]
    return orjson.dumps({"channels": channels})


@dataclass(frozen=True, slots=True)
class EpgEntry:
    body: bytes
    etag: str
    valid_until: float


def fragment_parts(values: list) -> tuple[bytes, bytes] | None:
    """(data, version tag) from HMGET version built_at data deleted; None when absent.

    A tombstone (the channel was deleted) gives empty data: the channel is left out.
    """
    version, built_at, data, deleted = values
    if deleted:
        return b"", b"deleted." + (built_at or b"")
    if version is None and data is None:
        return None
    if not data:
        raise BadEntry("EPG fragment lacks data")
    return data, (version or b"") + b"." + (built_at or b"")


FRAGMENT_FIELDS = ("version", "built_at", "data", "deleted")


def epg_etag(class_etag: str, day: str, tags: Iterable[bytes]) -> str:
    h = hashlib.blake2b(digest_size=10)
    h.update(class_etag.encode() + b"|" + day.encode())
    for tag in tags:
        h.update(b"|" + tag)
    return f'"e{h.hexdigest()}"'


def profile_etag(profile: ProfileEntry, cls: ClassEntry) -> str:
    return f'"{profile.etag}-{cls.etag}"'


def profile_body(profile: ProfileEntry, cls: ClassEntry) -> bytes:
    return profile.head + b',"channels":' + cls.allowed_json + profile.tail
