"""Which local days of the guide a zone keeps now: computed once per zone and local day."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from core import services
from core.builders import local_day_bounds


@dataclass(frozen=True, slots=True)
class Window:
    until: float  # epoch seconds of the next local midnight, when it must be computed again
    today: str
    kept: frozenset[str]
    first: str
    last: str


_windows: dict[str, Window] = {}


def window(tz: str, now: float) -> Window:
    """The kept days of `tz` at `now` (epoch seconds), as YYYY-MM-DD strings."""
    found = _windows.get(tz)
    if found is None or found.until <= now:
        moment = datetime.fromtimestamp(now, UTC)
        days = services.epg_days(tz, moment)
        today = moment.astimezone(ZoneInfo(tz)).date()
        _, midnight = local_day_bounds(today, tz)
        found = Window(midnight.timestamp(), today.isoformat(), frozenset(d.isoformat() for d in days),
                       days[0].isoformat(), days[-1].isoformat())
        _windows[tz] = found
    return found
