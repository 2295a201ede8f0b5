"""What one `bench run` measured: rows of (scenario, peer, metric, value, unit) with their
spread over passes, the machine they ran on, and the JSON written beside the report.

Pure: no Django, Redis or clock, so the report's arithmetic is unit-tested.
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Row:
    scenario: str
    peer: str
    metric: str
    value: float | None  # None: the peer never got there (or the scenario does not apply)
    unit: str
    low: float | None = None  # min and max over the passes when there were several
    high: float | None = None
    passes: int = 1

    def as_json(self) -> dict:
        out = {"scenario": self.scenario, "peer": self.peer, "metric": self.metric, "value": self.value,
               "unit": self.unit}
        if self.passes > 1:
            out.update(min=self.low, max=self.high, passes=self.passes)
        return out


def over_passes(scenario: str, peer: str, metric: str, values: Iterable[float | None], unit: str) -> Row:
    """The median of repeated passes, with their min and max. A pass that never got there
    (None) makes the row None: a peer that fails once does not get its best pass reported."""
    values = list(values)
    if not values or any(v is None for v in values):
        return Row(scenario, peer, metric, None, unit, passes=len(values))
    return Row(scenario, peer, metric, statistics.median(values), unit, min(values), max(values), len(values))


@dataclass
class Results:
    machine: dict = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the report says below its tables
    # Raw samples the plots need (latency percentiles, lag samples, freshness timings).
    samples: dict = field(default_factory=dict)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def value(self, scenario: str, peer: str, metric: str) -> float | None:
        for r in self.rows:
            if (r.scenario, r.peer, r.metric) == (scenario, peer, metric):
                return r.value
        return None

    def row(self, scenario: str, peer: str, metric: str) -> Row | None:
        for r in self.rows:
            if (r.scenario, r.peer, r.metric) == (scenario, peer, metric):
                return r
        return None

    def peers(self, scenario: str) -> list[str]:
        return list(dict.fromkeys(r.peer for r in self.rows if r.scenario == scenario))

    def as_json(self) -> dict:
        return {"machine": self.machine, "rows": [r.as_json() for r in self.rows]}


def fmt(value: float | None, unit: str) -> str:
    """A value for a table cell: thousands for rates, ms with 2 decimals, None as a dash."""
    if value is None:
        return "never"
    if unit in ("req/s", "changes/s", "entries/s"):
        return f"{value:,.0f}"
    if unit == "B":
        return f"{value:,.0f} B"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.0f} {unit}" if float(value).is_integer() else f"{value:,.3g} {unit}"


def spread(row: Row | None) -> str:
    """"1,234 (1,100-1,300)" when the row has passes, the plain value otherwise."""
    if row is None:
        return ""
    text = fmt(row.value, row.unit)
    if row.passes > 1 and row.value is not None and row.low != row.high:
        lo, hi = fmt(row.low, row.unit), fmt(row.high, row.unit)
        unit = f" {row.unit}" if row.unit in ("ms", "s", "B") else ""
        text += f" ({lo.removesuffix(unit)}-{hi})"
    return text


# -- targets -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Target:
    name: str  # as the issue or SPEC states it
    source: str  # where it was set
    measured: str
    verdict: str  # "met", "MISSED" or "not run"


def verdict(ok: bool | None) -> str:
    return "not run" if ok is None else ("met" if ok else "MISSED")


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None
