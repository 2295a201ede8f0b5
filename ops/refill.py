"""Refill a cache that lost its data: a Redis restarted without persistence, a FLUSHALL, a
failover to an empty replica.

Each full warm-up leaves a mark in Redis when it starts (jobs.mark_filled). Beat looks for
it every SWEEP_SECONDS; once it is gone, the cache lost everything since that warm-up, and a
new full warm-up job starts. Reads meanwhile build what they ask for (the miss path): this
only bounds how long the rest stays cold. A full warm-up still running when the mark went
started before the loss; it ends, and the next look starts a new one.

Under `maxmemory` with an LRU or random policy the mark can be evicted like any key. Once
Redis has evicted keys since it started, a missing mark says nothing about a restart, and a
full warm-up would only evict more: none starts, and the warning says why. (Each look reads
the mark with GET, which counts as a use, so an LRU policy keeps it among the last to go.)
On a Redis Cluster the mark lives on one node: a restart of another node alone is not seen.
"""
from __future__ import annotations

import logging

import redis

from core import keys, redis_conn

from . import jobs
from .scope import Scope

log = logging.getLogger("prewarm.warmup")
CREATED_BY = "refill: the cache lost its data"


def check() -> int | None:
    """Start a full warm-up when the cache lost its data; returns the job id it started."""
    client = redis_conn.client()
    if client.get(keys.filled_key()) is not None:
        return None
    evicted = evicted_keys(client)
    if evicted:
        log.warning("no full warm-up mark, but Redis evicted %d keys since it started: not refilling a "
                    "cache that is out of memory (reads rebuild what they miss)", evicted)
        return None
    job, new = jobs.submit(Scope(all=True), created_by=CREATED_BY)
    if not new:
        return None  # one that started before the loss: the next look after it ends starts another
    log.warning("the cache lost its data (no full warm-up mark): started full warm-up job %s", job.pk)
    return job.pk


def evicted_keys(client) -> int:
    """Keys Redis evicted since it started: on a cluster, every primary's (INFO alone asks one)."""
    if isinstance(client, redis.RedisCluster):
        replies = client.info("stats", target_nodes=redis.RedisCluster.PRIMARIES)
        per_node = replies.values() if all(isinstance(v, dict) for v in replies.values()) else [replies]
        return sum(int(stats.get("evicted_keys", 0)) for stats in per_node)
    return int(client.info("stats").get("evicted_keys", 0))
