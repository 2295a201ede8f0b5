"""A warm-up's scope: what to rebuild. Parsed once, the same for the API and the CLI."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from core import validation

MAX_ITEMS = 10_000
KEYS = ("all", "regions", "profiles", "epg_dates")


class BadScope(ValueError):
    """The message says what is wrong, in one line (a 400 body, or a command error)."""


@dataclass(frozen=True, slots=True)
class Scope:
    all: bool = False
    regions: tuple[str, ...] = ()  # codes: their profiles and classes
    profiles: tuple[int, ...] = ()  # ids
    epg_dates: tuple[str, ...] = ()  # YYYY-MM-DD: every channel's fragments for these local days

    def as_dict(self) -> dict:
        if self.all:
            return {"all": True}
        return {name: list(getattr(self, name)) for name in KEYS[1:] if getattr(self, name)}

    @property
    def key(self) -> str:
        """The same for two requests that name the same entries (order and repeats aside)."""
        return hashlib.sha256(orjson.dumps(self.as_dict(), option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


_LISTS = (
    ("regions", validation.is_code, "region codes"),
    ("profiles", _is_id, "profile ids"),
    ("epg_dates", validation.is_day, "YYYY-MM-DD dates"),
)


def parse(doc) -> Scope:
    """{"all": true}, or any of regions, profiles, epg_dates (each a list of 1 to MAX_ITEMS)."""
    if not isinstance(doc, dict):
        raise BadScope("the scope must be a JSON object")
    unknown = set(doc) - set(KEYS)
    if unknown:
        raise BadScope(f"unknown fields: {validation.field_names(unknown)}")
    if not doc:
        raise BadScope("give all, regions, profiles or epg_dates")
    if "all" in doc:
        if doc["all"] is not True:
            raise BadScope("all must be true when given")
        if len(doc) > 1:
            raise BadScope("all cannot be combined with other fields")
        return Scope(all=True)
    found = {}
    for name, check, what in _LISTS:
        if name in doc:
            values = doc[name]
            if not isinstance(values, list) or not values or len(values) > MAX_ITEMS:
                raise BadScope(f"{name} must be a list of 1 to {MAX_ITEMS} {what}")
            if not all(check(v) for v in values):
                raise BadScope(f"{name} must hold only {what}")
            found[name] = tuple(sorted(set(values)))
    return Scope(**found)
