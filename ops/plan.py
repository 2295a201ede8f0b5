"""Cutting a resolved scope into chunks: pure, so the rules are tested without services."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .models import ChunkKind

SPAN = 10_000  # profile ids per chunk: well under a second of work, the unit of resuming
EPG_CHANNELS = 50  # channels per EPG chunk


@dataclass(frozen=True, slots=True)
class ChunkSpec:
    kind: str
    lo: int = 0
    hi: int = 0
    planned: int = 0  # entries expected; the job's total is corrected when the chunk ends


def profile_chunks(counts: Mapping[int, int]) -> list[ChunkSpec]:
    """One chunk per SPAN-sized id span that holds profiles (`counts`: span -> profiles)."""
    return [ChunkSpec(ChunkKind.PROFILES, s * SPAN, (s + 1) * SPAN, n) for s, n in sorted(counts.items()) if n]


def epg_chunks(channel_ids: Sequence[int], fragments_per_channel: int) -> list[ChunkSpec]:
    """Channels in id order, EPG_CHANNELS at a time: [first id, last id + 1)."""
    ids = sorted(channel_ids)
    return [
        ChunkSpec(ChunkKind.EPG, part[0], part[-1] + 1, len(part) * fragments_per_channel)
        for part in (ids[i : i + EPG_CHANNELS] for i in range(0, len(ids), EPG_CHANNELS))
    ]


def chunks(
    *,
    profile_counts: Mapping[int, int],
    region_count: int,
    channel_ids: Sequence[int],
    fragments_per_channel: int,
) -> list[ChunkSpec]:
    """Classes first (a profile rebuild then finds its class held), then profiles, then EPG."""
    out = [ChunkSpec(ChunkKind.CLASSES, planned=region_count)] if region_count else []
    out += profile_chunks(profile_counts)
    if fragments_per_channel:
        out += epg_chunks(channel_ids, fragments_per_channel)
    return out
