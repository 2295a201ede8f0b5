"""The freshness page's facts: how the cache serves (hit ratio per layer), how far behind
Postgres it runs (lag percentiles), what the verifier found, what waits (outbox, queues)
and the latest warm-ups. `read()` gathers; the rest is pure, so it is tested alone."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from django.utils import timezone

from core import metrics

PERCENTILES = (50, 95, 99)


def percentile(snapshot: metrics.Snapshot, p: float) -> str | None:
    """The upper bound of the bucket holding the p-th percentile ("+Inf" past the last), or
    None with no observation: a histogram tells no finer than its buckets."""
    if snapshot.count == 0:
        return None
    rank = snapshot.count * p / 100
    for bound, cumulative in snapshot.buckets:
        if cumulative >= rank:
            return bound
    return snapshot.buckets[-1][0]


def hit_ratios(hits: Mapping[tuple[str, ...], int], misses: Mapping[tuple[str, ...], int]) -> dict[str, dict]:
    """family -> {"local": share, "redis": share, "miss": share, "reads": n} from the API counters."""
    out = {}
    for family in sorted({f for f, _ in hits} | {f for (f,) in misses}):
        local, remote = hits.get((family, "local"), 0), hits.get((family, "redis"), 0)
        missed = misses.get((family,), 0)
        reads = local + remote + missed
        out[family] = {"reads": reads, **{name: (n / reads if reads else 0.0) for name, n in
                                          (("local", local), ("redis", remote), ("miss", missed))}}
    return out


def _short(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def bar_chart(bars: list[tuple[str, int]], width: int = 640, height: int = 120) -> str:
    """An inline SVG bar chart (no script, no dependency): one bar per (label, count)."""
    if not bars:
        return ""
    top = max(1, max(n for _, n in bars))
    step = width / len(bars)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height + 30}" width="100%"'
             f' style="max-width:{width}px" role="img">']
    for i, (label, n) in enumerate(bars):
        h = round(height * n / top)
        x = round(i * step + 2)
        parts.append(f'<rect x="{x}" y="{height - h}" width="{max(1, round(step - 4))}" height="{h}" fill="#417690">'
                     f"<title>{label}: {n}</title></rect>")
        parts.append(f'<text x="{x}" y="{height + 14}" font-size="9" fill="#666">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def lag_bars(snapshot: metrics.Snapshot) -> list[tuple[str, int]]:
    """Observations per bucket (not cumulative), labelled by upper bound."""
    out, before = [], 0
    for bound, cumulative in snapshot.buckets:
        label = "more" if bound == "+Inf" else _short(float(bound))
        out.append((label, cumulative - before))
        before = cumulative
    return out


@dataclass
class Freshness:
    hits: dict = field(default_factory=dict)
    lag: dict = field(default_factory=dict)  # "p50" -> bucket bound (s) or None; "count"
    lag_chart: str = ""
    drift: dict = field(default_factory=dict)  # (family, kind) -> entries found, since the counters began
    verify_last_cycle: float | None = None
    outbox: tuple[int, float | None] | None = None
    queues: dict | None = None
    jobs: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # parts that could not be read
    at: object = None


def read(job_count: int = 5) -> Freshness:
    """Every part it can read; a part that fails (Redis or the broker down) is named in errors."""
    from workers import queues

    from . import jobs
    from .models import WarmupJob

    out = Freshness(at=timezone.now())
    try:
        counters = metrics.counter_values(metrics.STORE.counter_fields())
        out.hits = hit_ratios(counters.get(metrics.API_HITS, {}), counters.get(metrics.API_MISSES, {}))
        out.drift = dict(sorted(counters.get(metrics.VERIFY_DRIFT, {}).items()))
        gauges = metrics.gauge_values(metrics.STORE.gauge_fields())
        out.verify_last_cycle = gauges.get(metrics.VERIFY_LAST_CYCLE, {}).get(())
        snap = metrics.snapshot(metrics.INVALIDATION_LAG)
        out.lag = {"count": snap.count, **{f"p{p}": percentile(snap, p) for p in PERCENTILES}}
        out.lag_chart = bar_chart(lag_bars(snap))
    except Exception as exc:  # a page for a bad night: show what can be shown
        out.errors.append(f"metrics (Redis): {exc}")
    try:
        out.outbox = queues.outbox()
    except Exception as exc:
        out.errors.append(f"outbox (Postgres): {exc}")
    try:
        out.queues = queues.depths()
    except Exception as exc:
        out.errors.append(f"queues (broker): {exc}")
    out.jobs = [jobs.progress(job) for job in WarmupJob.objects.all()[:job_count]]
    return out
