"""How much Redis a data set needs, measured on real entries (the seed's "calculate the
volume first"): entries built from this database's rows are written under scratch keys of
the same length as the real ones, weighed with MEMORY USAGE, and deleted again."""
from __future__ import annotations

import math
import random
import secrets
from dataclasses import dataclass, field

from core import keys, redis_conn, selectors, services
from core.builders import Entry, epoch_ms
from core.entitlement import EntitlementClass

SAMPLE = 300  # entries of each family weighed
# maxmemory = entries x this: the allocator's fragmentation (jemalloc ~1.1-1.3), keys that
# come and go (markers, edges, flight locks) and room for LRU to evict cold entries rather
# than the working set.
HEADROOM = 1.5
MB = 1024 * 1024


class CapacityError(RuntimeError):
    """One line for the operator (nothing to measure, bad input)."""


@dataclass
class Family:
    entries: int  # in the sized data set
    bytes_per_entry: float  # mean MEMORY USAGE of the weighed sample
    weighed: int

    @property
    def bytes(self) -> int:
        return math.ceil(self.entries * self.bytes_per_entry)


@dataclass
class Estimate:
    profiles: int
    days: int
    families: dict[str, Family] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.families.values())

    @property
    def maxmemory_bytes(self) -> int:
        """Rounded up to whole 64 MiB."""
        return math.ceil(self.total_bytes * HEADROOM / (64 * MB)) * 64 * MB

    def as_dict(self) -> dict:
        return {
            "profiles": self.profiles, "days": self.days, "headroom": HEADROOM,
            "families": {name: {"entries": f.entries, "bytes_per_entry": round(f.bytes_per_entry, 1),
                                "bytes": f.bytes, "weighed": f.weighed} for name, f in self.families.items()},
            "total_bytes": self.total_bytes, "maxmemory_bytes": self.maxmemory_bytes,
            "maxmemory": f"{self.maxmemory_bytes // MB}mb",
        }


class _Scale:
    """Writes entries under scratch keys as long as their real ones, and weighs them."""

    def __init__(self):
        self.client = redis_conn.client()
        self.tag = "~" + secrets.token_hex(3)  # 7 characters replace the key's first 7
        self.written: list[str] = []

    def _scratch(self, key: str) -> str:
        return self.tag + key[len(self.tag):] if len(key) > len(self.tag) else self.tag

    def weigh_hashes(self, items: list[tuple[str, Entry]], built_at_ms: int) -> list[int]:
        pipe = self.client.pipeline(transaction=False)
        names = []
        for key, entry in items:
            name = self._scratch(key)
            names.append(name)
            pipe.delete(name)
            pipe.hset(name, mapping={"version": entry.version, "built_at": built_at_ms, **entry.fields})
        self.written += names
        pipe.execute()
        return self._usage(names)

    def weigh_set(self, key: str, members: list[str]) -> int:
        name = self._scratch(key)
        self.written.append(name)
        self.client.delete(name)
        if members:
            self.client.sadd(name, *members)
        return self._usage([name])[0]

    def _usage(self, names: list[str]) -> list[int]:
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.memory_usage(name, samples=0)
        return [int(n or 0) for n in pipe.execute()]

    def close(self) -> None:
        for i in range(0, len(self.written), 1000):
            self.client.unlink(*self.written[i : i + 1000])


def _mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else 0.0


def estimate(profiles: int, days: int | None = None, sample: int = SAMPLE) -> Estimate:
    """Weigh `sample` real entries of each family and size a set of `profiles` viewers with
    the classes in use here and `days` kept guide days (default: the kept window)."""
    if profiles < 1:
        raise CapacityError("--profiles must be at least 1")
    now = selectors.db_now()
    ids = selectors.sample_profile_ids(sample)
    if not ids:
        raise CapacityError("no profiles to build sample entries from: run `manage.py seed_demo` first")
    windows = services.epg_windows(now)
    zones = sorted({tz for tz, _ in windows})
    kept_days = len(windows) // max(1, len(zones))
    days = kept_days if days is None else days
    if days < 1:
        raise CapacityError("--days must be at least 1")
    built = epoch_ms(now)
    out = Estimate(profiles, days)
    scale = _Scale()
    try:
        entries, _ = services.profile_entries(ids, now)
        sizes = scale.weigh_hashes([(keys.profile_key(p), e) for p, e in entries.items()], built)
        out.families["profile"] = Family(profiles, _mean(sizes), len(sizes))

        heads = selectors.region_heads()
        in_use = {head[0]: selectors.region_classes(head[0], now) for head in heads}
        classes = []
        for head in heads:
            found = [EntitlementClass(head[1], isp, frozenset(plans)) for isp, plans in in_use[head[0]]]
            classes += [(head, c) for c in found]
        picked = random.sample(classes, min(sample, len(classes)))
        class_items = []
        for head in {h for h, _ in picked}:
            mine = [c for h, c in picked if h == head]
            class_items += [(keys.class_key(cid), e) for cid, e in services.class_entries(head, mine, now).items()]
        sizes = scale.weigh_hashes(class_items, built)
        out.families["class"] = Family(len(classes), _mean(sizes), len(sizes))
        set_sizes = [
            scale.weigh_set(keys.region_classes_key(head[1]),
                            [services.class_member(c) for h, c in classes if h == head] + [services.COMPLETE_MEMBER])
            for head in heads
        ]
        out.families["class set"] = Family(len(heads), _mean(set_sizes), len(set_sizes))

        channel_ids = selectors.channel_ids()
        fragments = len(channel_ids) * len(zones) * days
        some = random.sample(channel_ids, min(len(channel_ids), max(1, sample // max(1, len(windows)))))
        frag_entries, _ = services.epg_entries(some, windows, now)
        items = list(frag_entries.items())[:sample]
        sizes = scale.weigh_hashes(items, built)
        out.families["epg fragment"] = Family(fragments, _mean(sizes), len(sizes))
    finally:
        scale.close()
    return out
