"""Every counter, gauge and histogram Prewarm exposes, declared once, and the Redis storage they share.

A declaration names the metric as Prometheus shows it, its help text and its labels; the
storage field or key is derived from that name, so writers and `/metrics` never spell a
metric twice. Workers and services write here directly (one pipeline per call); the API counts
in process memory and adds its counts here about once a second (api.metrics). A new metric is
one more `_declare(...)` line below; api.metrics exposes it with no further change.
"""
from __future__ import annotations

import bisect
import contextlib
import contextvars
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from . import keys
from .redis_conn import client

log = logging.getLogger(__name__)

PREFIX = "prewarm_"
_NAME = re.compile(r"prewarm_[a-z][a-z0-9_]*")
SEP = ":"  # between a storage name and its label values; label values may not contain it


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"metric name {name!r} must be lower snake case starting with {PREFIX!r}")


def _label_part(labels: tuple[str, ...], values: tuple[str, ...]) -> str:
    if len(values) != len(labels):
        raise ValueError(f"labels {labels} need {len(labels)} values, got {values!r}")
    for value in values:
        if SEP in value:
            raise ValueError(f"label value {value!r} may not contain {SEP!r}")
    return SEP.join(values)


@dataclass(frozen=True, slots=True)
class _Series:
    """A named value with labels, kept as one field per label set in a Redis hash."""

    name: str
    help: str
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def short(self) -> str:
        return self.name.removeprefix(PREFIX)

    def field(self, values: tuple[str, ...] = ()) -> str:
        """Its field in its hash: `rebuilds:profile` for REBUILDS with ("profile",)."""
        part = _label_part(self.labels, values)
        return f"{self.short}{SEP}{part}" if self.labels else self.short


@dataclass(frozen=True, slots=True)
class Counter(_Series):
    """A monotonic count shared by all processes; Prometheus shows it as `<name>_total`."""


@dataclass(frozen=True, slots=True)
class Gauge(_Series):
    """A value that is set, not added to (the last writer wins); Prometheus shows it as `<name>`."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One histogram series as Prometheus wants it: cumulative buckets ending at +Inf."""

    buckets: list[tuple[str, int]]
    count: int
    sum: float


@dataclass(frozen=True, slots=True)
class Histogram:
    """Observations counted into fixed buckets (upper bounds, seconds for timings), per label set.

    Stored as one hash: `b<i>` (observations in bucket i, not cumulative; i == len(buckets) is
    +Inf), `count` and `sum`, each after `<label values>:` when there are labels. With
    `samples_kept`, the latest raw values are kept too, for exact percentiles (bench/): one
    list item per observe call, standing for its `count` observations.
    """

    name: str
    help: str
    buckets: tuple[float, ...]
    labels: tuple[str, ...] = ()
    samples_kept: int = 0

    def __post_init__(self) -> None:
        _check_name(self.name)
        if list(self.buckets) != sorted(set(self.buckets)):
            raise ValueError(f"{self.name}: buckets must be increasing")

    @property
    def short(self) -> str:
        return self.name.removeprefix(PREFIX)

    def bucket(self, value: float) -> int:
        """The index of the first bucket whose upper bound holds `value` (Prometheus `le`)."""
        return bisect.bisect_left(self.buckets, value)

    def bucket_label(self, index: int) -> str:
        return "+Inf" if index >= len(self.buckets) else repr(self.buckets[index])

    def samples_name(self, values: tuple[str, ...] = ()) -> str:
        """Names the list of raw samples of one series (`pipeline_hop_seconds:queue`)."""
        return f"{self.short}{SEP}{_label_part(self.labels, values)}" if self.labels else self.short

    def increments(self, value: float, count: int = 1, values: tuple[str, ...] = ()) -> list[tuple[str, int | float]]:
        """The hash fields `count` observations of `value` add to (the sum's as a float)."""
        head = _label_part(self.labels, values) + SEP if self.labels else ""
        return [(f"{head}b{self.bucket(value)}", count), (f"{head}count", count), (f"{head}sum", float(value * count))]

    def snapshots(self, raw: Mapping[str, float]) -> dict[tuple[str, ...], Snapshot]:
        """Cumulative series by label values from the stored hash; an unlabelled one is always there."""
        series: dict[tuple[str, ...], dict[str, float]] = {} if self.labels else {(): {}}
        for name, amount in raw.items():
            head, _, stat = name.rpartition(SEP)
            values = tuple(head.split(SEP)) if self.labels else ()
            if bool(head) != bool(self.labels) or len(values) != len(self.labels):
                continue  # a field this declaration does not write
            series.setdefault(values, {})[stat] = amount
        out = {}
        for values, stats in series.items():
            running, cumulative = 0, []
            for i in range(len(self.buckets) + 1):
                running += int(stats.get(f"b{i}", 0))
                cumulative.append((self.bucket_label(i), running))
            out[values] = Snapshot(cumulative, int(stats.get("count", 0)), float(stats.get("sum", 0.0)))
        return out


METRICS: dict[str, Counter | Gauge | Histogram] = {}


def _declare(metric):
    if metric.name in METRICS or any(m.short == metric.short for m in METRICS.values()):
        raise ValueError(f"metric {metric.name} declared twice")
    METRICS[metric.name] = metric
    return metric


def counters() -> list[Counter]:
    return [m for m in METRICS.values() if isinstance(m, Counter)]


def histograms() -> list[Histogram]:
    return [m for m in METRICS.values() if isinstance(m, Histogram)]


def gauges() -> list[Gauge]:
    return [m for m in METRICS.values() if isinstance(m, Gauge)]


def _by_declaration(declared, raw: Mapping[str, float], cast) -> dict:
    by_short = {m.short: m for m in declared}
    out: dict = {m: {} for m in by_short.values()}
    for name, value in raw.items():
        short, _, rest = name.partition(SEP)
        metric = by_short.get(short)
        if metric is None:
            continue  # a field no declaration writes (left by an older version)
        values = tuple(rest.split(SEP)) if metric.labels else ()
        if bool(rest) == bool(metric.labels) and len(values) == len(metric.labels):
            out[metric][values] = cast(value)
    return out


def counter_values(raw: Mapping[str, int]) -> dict[Counter, dict[tuple[str, ...], int]]:
    """The counters hash read back by declaration: {counter: {label values: count}}."""
    return _by_declaration(counters(), raw, int)


def gauge_values(raw: Mapping[str, float]) -> dict[Gauge, dict[tuple[str, ...], float]]:
    """The gauges hash read back by declaration: {gauge: {label values: value}}."""
    return _by_declaration(gauges(), raw, float)


# -- the declarations ----------------------------------------------------------------------

REBUILDS = _declare(Counter("prewarm_rebuilds", "Entries written by rebuilds", ("family",)))
REBUILDS_REFUSED = _declare(
    Counter("prewarm_rebuilds_refused", "Writes refused because newer data was stored", ("family",))
)
ENTRIES_DELETED = _declare(Counter("prewarm_entries_deleted", "Tombstones written", ("family",)))
# Counted in API process memory (api.metrics) and added here about once a second.
API_HITS = _declare(Counter("prewarm_api_hits", "Warm reads by layer", ("family", "layer")))
API_MISSES = _declare(Counter("prewarm_api_misses", "Reads that had to build the entry", ("family",)))
API_BUILT = _declare(Counter("prewarm_api_built", "Entries served after a build", ("family",)))
API_DEGRADED = _declare(Counter("prewarm_api_degraded", "Answers built from Postgres (Redis down)", ("family",)))

# The verifier (core.verify): drift it found, and when the rolling verification last covered
# every profile id (schedules: prewarm.verify_slice).
VERIFY_DRIFT = _declare(
    Counter("prewarm_verify_drift", "Entries the verifier found differing from Postgres", ("family", "kind"))
)
VERIFY_LAST_CYCLE = _declare(
    Gauge("prewarm_verify_last_cycle_timestamp_seconds", "When the rolling verification last finished a full cycle")
)

INVALIDATION_LAG = _declare(
    Histogram(
        "prewarm_invalidation_lag_seconds",
        "Commit to entry rewritten",
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
        samples_kept=100_000,
    )
)
# A time edge's rebuild (a window opened or closed: workers.edges), from the edge's moment to
# the entry rewritten: how late the ETA task ran. Kept apart from the lag of changes, which
# it would otherwise swamp at p99 when a warm-up has queued thousands of edges.
EDGE_LATENESS = _declare(
    Histogram(
        "prewarm_edge_lateness_seconds",
        "Time edge to entry rewritten",
        buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
        samples_kept=10_000,
    )
)
# The same path cut into hops, per rebuilt entry (workers.hops): notify (commit -> the relay
# woke), relay (-> task published), queue (-> task started), read (-> rows read from
# Postgres), write (-> entries written). Signal-path tasks have no notify or relay hop.
PIPELINE_HOPS = _declare(
    Histogram(
        "prewarm_pipeline_hop_seconds",
        "Time an invalidation spends in each hop of the pipeline",
        buckets=(0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        labels=("hop",),
        samples_kept=100_000,
    )
)


# -- storage -------------------------------------------------------------------------------


class RedisStore:
    """Where every process adds its counts: one counters hash, one hash (and samples list) per
    histogram. It takes the current cache client on each call, so tests may repoint Redis.

    Each call is one round trip; inside `deferred()` the calls of a whole block share one.
    """

    def __init__(self) -> None:
        self._held: contextvars.ContextVar = contextvars.ContextVar("metrics_pipeline", default=None)

    @contextlib.contextmanager
    def deferred(self) -> Iterator:
        """Hold every add, observe and set made inside the block and send them together at its
        end: a rebuild task's metrics cost one round trip, not one per call. Yields the
        pipeline, for other best-effort commands to ride along. Best effort: a block that
        raises still sends them, and a send that fails is logged, never raised (the block's
        work is done; its metrics must not make it fail or retry)."""
        if (held := self._held.get()) is not None:  # nested: the outer block sends
            yield held
            return
        pipe = client().pipeline(transaction=False)
        token = self._held.set(pipe)
        try:
            yield pipe
        finally:
            self._held.reset(token)
            try:
                pipe.execute()
            except Exception as exc:
                log.warning("deferred metrics (and commands riding along) not sent: %s: %s", type(exc).__name__, exc)

    @contextlib.contextmanager
    def _pipe(self) -> Iterator:
        held = self._held.get()
        if held is not None:
            yield held
            return
        pipe = client().pipeline(transaction=False)
        yield pipe
        pipe.execute()

    def add(self, counts: Iterable[tuple[Counter, tuple[str, ...], int]]) -> None:
        """Add each (counter, label values, amount); a 0 still shows the series."""
        with self._pipe() as pipe:
            for counter, values, amount in counts:
                pipe.hincrby(keys.counters_key(), counter.field(values), amount)

    def observe(self, histogram: Histogram, value: float, *, count: int = 1, values: tuple[str, ...] = ()) -> None:
        key = keys.histogram_key(histogram.short)
        with self._pipe() as pipe:
            for field, amount in histogram.increments(value, count, values):
                if isinstance(amount, float):
                    pipe.hincrbyfloat(key, field, amount)
                else:
                    pipe.hincrby(key, field, amount)
            if histogram.samples_kept:
                samples = keys.histogram_samples_key(histogram.samples_name(values))
                pipe.lpush(samples, _sample(value, count))
                pipe.ltrim(samples, 0, histogram.samples_kept - 1)

    def set(self, values: Iterable[tuple[Gauge, tuple[str, ...], float]]) -> None:
        """Set each (gauge, label values, value)."""
        mapping = {gauge.field(labels): repr(float(value)) for gauge, labels, value in values}
        if mapping:
            with self._pipe() as pipe:
                pipe.hset(keys.gauges_key(), mapping=mapping)

    def counter_fields(self) -> dict[str, int]:
        return {k.decode(): int(float(v)) for k, v in client().hgetall(keys.counters_key()).items()}

    def gauge_fields(self) -> dict[str, float]:
        return {k.decode(): float(v) for k, v in client().hgetall(keys.gauges_key()).items()}

    def histogram_fields(self, histogram: Histogram) -> dict[str, float]:
        return {k.decode(): float(v) for k, v in client().hgetall(keys.histogram_key(histogram.short)).items()}

    def recent_samples(self, histogram: Histogram, values: tuple[str, ...] = ()) -> list[float]:
        """The latest raw observations of one series, newest first."""
        raw = client().lrange(keys.histogram_samples_key(histogram.samples_name(values)), 0, -1)
        return [v for x in raw for v in _unsample(x)]

    def forget_samples(self, histogram: Histogram, values: tuple[str, ...] = ()) -> None:
        client().delete(keys.histogram_samples_key(histogram.samples_name(values)))


class MemoryStore:
    """The same storage in a dict, for unit tests (no Redis)."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.gauges: dict[str, float] = {}
        self.hashes: dict[str, dict[str, float]] = {}
        self.samples: dict[str, list[float]] = {}

    def add(self, counts: Iterable[tuple[Counter, tuple[str, ...], int]]) -> None:
        for counter, values, amount in counts:
            field = counter.field(values)
            self.counters[field] = self.counters.get(field, 0) + amount

    def observe(self, histogram: Histogram, value: float, *, count: int = 1, values: tuple[str, ...] = ()) -> None:
        fields = self.hashes.setdefault(histogram.short, {})
        for field, amount in histogram.increments(value, count, values):
            fields[field] = fields.get(field, 0) + amount
        if histogram.samples_kept:
            kept = self.samples.setdefault(histogram.samples_name(values), [])
            kept[:0] = [value] * count
            del kept[histogram.samples_kept :]

    def set(self, values: Iterable[tuple[Gauge, tuple[str, ...], float]]) -> None:
        for gauge, labels, value in values:
            self.gauges[gauge.field(labels)] = float(value)

    def counter_fields(self) -> dict[str, int]:
        return dict(self.counters)

    def gauge_fields(self) -> dict[str, float]:
        return dict(self.gauges)

    def histogram_fields(self, histogram: Histogram) -> dict[str, float]:
        return dict(self.hashes.get(histogram.short, {}))

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        yield None

    def recent_samples(self, histogram: Histogram, values: tuple[str, ...] = ()) -> list[float]:
        return list(self.samples.get(histogram.samples_name(values), []))

    def forget_samples(self, histogram: Histogram, values: tuple[str, ...] = ()) -> None:
        self.samples.pop(histogram.samples_name(values), None)


def _sample(value: float, count: int) -> str:
    """One raw sample standing for `count` equal observations (a task's ids share its lag)."""
    return f"{value:.6f}" if count == 1 else f"{value:.6f}*{count}"


def _unsample(raw: bytes) -> list[float]:
    value, _, count = raw.decode().partition("*")
    return [float(value)] * int(count or 1)


STORE: RedisStore | MemoryStore = RedisStore()  # callers look it up at call time: tests swap it


def snapshot(histogram: Histogram, values: tuple[str, ...] = ()) -> Snapshot:
    """One series of a histogram as stored now (zeros when nothing was observed)."""
    series = histogram.snapshots(STORE.histogram_fields(histogram))
    empty = Snapshot([(histogram.bucket_label(i), 0) for i in range(len(histogram.buckets) + 1)], 0, 0.0)
    return series.get(values, empty)
