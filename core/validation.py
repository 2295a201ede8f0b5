"""One rule per kind of input (codes, calendar days), shared by the models, the views and the ops API."""
from __future__ import annotations

import re
from datetime import date

# Region, ISP, plan and channel codes: short, URL-safe, and small enough for listpack fields.
CODE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}"
CODE_RULE = "1-32 letters, digits, '-', '_' or '.'"
_CODE = re.compile(CODE_PATTERN)
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # not \d: that admits non-ASCII digits


def is_code(value: object) -> bool:
    return isinstance(value, str) and _CODE.fullmatch(value) is not None


class BadDay(ValueError):
    """Not a YYYY-MM-DD calendar day; the message says which rule it broke."""


def parse_day(value: object) -> date:
    """A YYYY-MM-DD string as a date, or BadDay (malformed, or no such calendar day)."""
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise BadDay("date must be YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadDay(f"{value} is not a calendar date") from None


def is_day(value: object) -> bool:
    try:
        parse_day(value)
    except BadDay:
        return False
    return True


def field_names(names) -> str:
    """Unknown fields of a request, for a one-line message: plain names as they are, any other
    (a newline, a quote, a thousand characters) as a short repr; at most five named."""
    shown = [n if n.isidentifier() and len(n) <= 40 else repr(n[:40]) for n in sorted(names)[:5]]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
