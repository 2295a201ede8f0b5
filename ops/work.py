"""What one chunk does: rebuild its entries through core.services, count what was written
and what Redis refused as older than it held (an invalidation got there first)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from core import selectors, services
from workers import edges, events

from .models import ChunkKind

BATCH = 2_000  # profiles per query set and Redis round trip


@dataclass
class Counts:
    done: int = 0  # entries this chunk covered (profiles, regions, fragments)
    written: int = 0
    refused: int = 0

    def add(self, outcome: services.Outcome, kind: str) -> None:
        self.written += outcome.written
        self.refused += outcome.refused
        edges.queue_built(kind, outcome)  # as an invalidation's rebuild does: time edges on time


def run(kind: str, lo: int, hi: int, resolved: dict) -> Counts:
    """`resolved`: the job's targets (ops.jobs.resolve): region_ids, profile_ids, days."""
    counts = Counts()
    if kind == ChunkKind.PROFILES:
        region_ids, profile_ids = resolved.get("region_ids"), resolved.get("profile_ids")
        if region_ids is None and profile_ids is None:  # every profile: read the spans, no id list
            batches = [range(a, min(a + BATCH, hi)) for a in range(lo, hi, BATCH)]
        else:
            ids = selectors.scoped_profile_ids(lo, hi, region_ids, profile_ids)
            batches = [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]
        for outcome in services.rebuild_profile_batches(batches):
            counts.add(outcome, events.PROFILE)
            counts.done += outcome.written + outcome.refused + outcome.deleted  # every id it covered
    elif kind == ChunkKind.CLASSES:
        region_ids = resolved.get("region_ids")
        counts.add(services.rebuild_regions(region_ids), events.REGION)
        counts.done = len(region_ids) if region_ids is not None else len(selectors.region_heads())
    elif kind == ChunkKind.EPG:
        days = resolved.get("days")
        outcome = services.rebuild_epg(
            selectors.channel_ids_between(lo, hi), days=[date.fromisoformat(d) for d in days] if days else None
        )
        counts.add(outcome, events.CHANNEL)
        counts.done = outcome.written + outcome.refused
    else:
        raise ValueError(f"unknown chunk kind {kind!r}")
    return counts
