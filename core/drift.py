"""What counts as drift between a fresh build and what Redis holds: pure rules, no Redis, ORM or clock.

The verifier (core.verify) reads both sides and asks these functions for a verdict; they are
where its unit tests live.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from .builders import Entry

PROFILE, CLASS, EPG = "profile", "class", "epg"
FAMILIES = (PROFILE, CLASS, EPG)
MISSING, STALE, ORPHAN = "missing", "stale", "orphan"
KINDS = (MISSING, STALE, ORPHAN)

TOMBSTONE = b"deleted"  # a deleted row's entry carries this field
IGNORED = frozenset({b"built_at"})  # when a build ran says nothing about what it holds
EXAMPLES = 5  # per family and kind in a report


@dataclass(frozen=True, slots=True)
class Finding:
    """One entry that differs from what Postgres says it must hold."""

    family: str
    kind: str
    key: str
    fields: tuple[str, ...] = ()  # the fields that differ (stale)
    why: str = ""
    valid_until: float | None = None  # the stored entry's, epoch s (profile and class entries)

    def as_dict(self) -> dict:
        return {"key": self.key, "fields": list(self.fields), "why": self.why}


Stored = Mapping[bytes, bytes] | Exception  # HGETALL's reply: {} when absent, an error for a non-hash


def expected_fields(entry: Entry) -> dict[bytes, bytes]:
    """The hash a fresh build writes, built_at aside."""
    return {b"version": str(entry.version).encode(), **{name.encode(): value for name, value in entry.fields.items()}}


def differing(entry: Entry, stored: Mapping[bytes, bytes]) -> tuple[str, ...]:
    """Names of the fields whose stored bytes are not the fresh build's (extra fields included)."""
    want = expected_fields(entry)
    names = {name for name, value in want.items() if stored.get(name) != value}
    names.update(name for name in stored if name not in want and name not in IGNORED)
    return tuple(sorted(name.decode("utf-8", "replace") for name in names))


def stored_valid_until(stored: Mapping[bytes, bytes]) -> float | None:
    raw = stored.get(b"valid_until") or b""
    return float(raw) if raw.isdigit() else None


def judge(family: str, key: str, entry: Entry | None, stored: Stored) -> Finding | None:
    """The verdict on one entry Postgres has an opinion on: `entry` is the fresh build, None when
    the row is gone. None means the entry is right (a tombstone for a gone row is right)."""
    if isinstance(stored, Exception):
        return Finding(family, STALE, key, ("type",), f"not a hash: {stored}")
    if entry is None:
        if not stored or TOMBSTONE in stored:
            return None
        return Finding(family, STALE, key, ("deleted",), "live entry where the row is gone", stored_valid_until(stored))
    if not stored:
        return Finding(family, MISSING, key, (), "no entry")
    if TOMBSTONE in stored:
        return Finding(family, STALE, key, ("deleted",), "tombstone where the row exists")
    names = differing(entry, stored)
    if not names:
        return None
    return Finding(family, STALE, key, names, "differs from Postgres", stored_valid_until(stored))


def orphan(family: str, key: str, stored: Stored, why: str) -> Finding | None:
    """An entry nothing needs any more; a tombstone is not one (it expires by itself)."""
    if isinstance(stored, Exception):
        return Finding(family, ORPHAN, key, ("type",), f"not a hash: {stored}")
    if not stored or TOMBSTONE in stored:
        return None
    return Finding(family, ORPHAN, key, (), why)


def in_flight(finding: Finding, now_s: float, grace: float) -> bool:
    """A stale entry whose valid_until passed less than `grace` ago: nobody serves it (the API
    rebuilds an expired entry on read), and the rebuild scheduled for that moment may still
    be landing. Older than that, it is drift."""
    v = finding.valid_until
    return finding.kind == STALE and v is not None and v <= now_s < v + grace


# -- the rolling verification's slices of the profile id range -----------------------------


@dataclass(frozen=True, slots=True)
class Slice:
    start: int  # first profile id
    end: int  # first id after the slice
    first: bool  # starts a cycle
    last: bool  # reaches past the highest id: the cycle is complete after it


def slices_per_cycle(cycle_seconds: float, every_seconds: float) -> int:
    return max(1, math.ceil(cycle_seconds / every_seconds))


def next_slice(cursor: int | None, bounds: tuple[int, int] | None, slices: int) -> Slice | None:
    """The slice after `cursor` (the end of the previous one; None to start) so that `slices`
    slices cover [lowest, highest id]; None when there is no profile."""
    if bounds is None:
        return None
    lo, hi = bounds
    width = max(1, math.ceil((hi - lo + 1) / slices))
    first = cursor is None or cursor <= lo or cursor > hi
    start = lo if first else cursor
    end = start + width
    return Slice(start, end, first, end > hi)


# -- a run's outcome -----------------------------------------------------------------------


@dataclass
class Report:
    scope: str
    families: tuple[str, ...]
    checked: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    orphans_checked: dict[str, bool] = field(default_factory=dict)
    repaired: dict[str, dict[str, int]] | None = None  # None: no repair asked
    refused: dict[str, int] = field(default_factory=dict)  # repairs the compare-and-set refused
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.findings

    def counts(self) -> dict[str, dict[str, int]]:
        out = {family: dict.fromkeys(KINDS, 0) for family in self.families}
        for f in self.findings:
            out[f.family][f.kind] += 1
        return out

    def examples(self, limit: int = EXAMPLES) -> dict[str, dict[str, list[Finding]]]:
        out: dict[str, dict[str, list[Finding]]] = {family: {kind: [] for kind in KINDS} for family in self.families}
        for f in self.findings:
            kept = out[f.family][f.kind]
            if len(kept) < limit:
                kept.append(f)
        return out

    def as_dict(self, limit: int = EXAMPLES) -> dict:
        counts, examples = self.counts(), self.examples(limit)
        families = {}
        for family in self.families:
            entry = {
                "checked": self.checked.get(family, 0),
                **counts[family],
                "orphans_checked": self.orphans_checked.get(family, False),
                "examples": {kind: [f.as_dict() for f in found] for kind, found in examples[family].items() if found},
            }
            if self.repaired is not None:
                entry["repaired"] = self.repaired.get(family, dict.fromkeys(KINDS, 0))
                entry["refused"] = self.refused.get(family, 0)
            families[family] = entry
        return {"scope": self.scope, "clean": self.clean, "seconds": round(self.seconds, 3), "families": families}
