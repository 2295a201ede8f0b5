"""What every scenario of a run shares: its plan (quick or full), environment, results and servers."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..results import Results


@dataclass(frozen=True, slots=True)
class Plan:
    profiles: int  # the data set
    viewers: int  # viewer tokens the load rotates over
    seconds: float  # one load measurement
    passes: int  # repeated, interleaved passes of every measurement
    connections: int
    fresh_timeout: float  # a peer not fresh by then never got there (null)
    lag_seconds: float  # each steady-rate run
    lag_rates: tuple[int, ...]
    burst: int  # subscriptions changed by one UPDATE


QUICK = Plan(profiles=100_000, viewers=100, seconds=3, passes=2, connections=32, fresh_timeout=15,
             lag_seconds=15, lag_rates=(200,), burst=10_000)
FULL = Plan(profiles=1_000_000, viewers=500, seconds=8, passes=3, connections=32, fresh_timeout=60,
            lag_seconds=60, lag_rates=(200, 2000), burst=100_000)


@dataclass
class Context:
    plan: Plan
    env: dict[str, str]
    out: Path  # bench/results/<stamp>/
    peers: list[str]
    scenarios: list[str]
    profile: bool  # --profile: flamegraphs under load
    results: Results = field(default_factory=Results)
    servers: dict = field(default_factory=dict)  # name -> servers.Server
    viewers: list = field(default_factory=list)  # bench.api.Viewer
