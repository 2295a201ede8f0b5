"""Reads for the views: one pipelined round trip per call on a per-thread tracked connection.

Redis faults open a short circuit breaker, so while Redis is down a request goes straight to
Postgres instead of paying a connect timeout each time. A failed call is never retried: it
closes the connection (and tells the tracker, which then clears the local cache) and the
next call connects again.
"""
from __future__ import annotations

import os
import threading
import time

from django.conf import settings

from . import cluster, local_layer
from .connection import RedisConn, RedisDown, ReplyError

# After a fault, skip Redis for this long (seconds) before trying again.
BREAKER_SECONDS = 1.0

_local = threading.local()
_breaker = {"until": 0.0, "error": None}


def _conn() -> RedisConn:
    conn = getattr(_local, "conn", None)
    url = settings.REDIS_URL
    if conn is None or conn.url != url:
        if conn is not None:
            _drop(conn)
        conn = _local.conn = RedisConn(url)
    return conn


def _drop(conn: RedisConn) -> None:
    """Close `conn`; the local entries it covered lose their invalidations with it."""
    if conn.tracking_epoch is not None:
        _uncover(conn)
    conn.close()


def _uncover(conn: RedisConn) -> None:
    tracker = local_layer.current()
    if tracker is not None:
        tracker.uncover(conn)


def _forget_after_fork() -> None:
    global _local
    _local = threading.local()  # the parent's sockets are not ours to use
    cluster.forget_conns()
    _breaker.update(until=0.0, error=None)  # nor its view of Redis: this process has not tried yet


os.register_at_fork(after_in_child=_forget_after_fork)


def down() -> str | None:
    """Why Redis is skipped right now, or None."""
    if _breaker["until"] > time.monotonic():
        return _breaker["error"]
    return None


def trip(error: str) -> None:
    _breaker["until"] = time.monotonic() + BREAKER_SECONDS
    _breaker["error"] = error


def reset() -> None:
    _breaker["until"] = 0.0
    conn = getattr(_local, "conn", None)
    if conn is not None:
        _drop(conn)
        _local.conn = None
    for conn in cluster.thread_conns():
        _drop(conn)
    cluster.forget_conns()


def call(commands: list[tuple], *, tracked: bool) -> tuple[list, bool]:
    """Run the commands in one round trip; returns (replies, covered).

    `covered` is true when the keys read are tracked by this process's live invalidation
    connection: only then may the result enter the local cache (with a ticket opened
    before this call).
    """
    if _breaker["until"] > time.monotonic():
        raise RedisDown(_breaker["error"] or "Redis is down")
    if settings.PREWARM_REDIS_CLUSTER:
        return _call_cluster(commands, tracked)
    return _call(_conn(), commands, tracked)


def _call_cluster(commands: list[tuple], tracked: bool) -> tuple[list, bool]:
    """call() on a Redis Cluster: on the connection to the node that owns the commands' slot
    (they name one), asked again once where a MOVED or ASK reply points."""
    slots = cluster.slot_map(settings.REDIS_URL)
    for attempt in (1, 2):
        try:
            conn = cluster.conn_for(slots, commands)
        except RedisDown as exc:  # no node told us the map
            trip(str(exc))
            raise
        try:
            replies, covered = _call(conn, commands, tracked)
        except RedisDown:
            slots.owner = []  # a node failed over or left: read the map again next time
            raise
        if attempt == 1 and cluster.moved(replies):
            slots.refresh()
            continue
        return replies, covered
    return replies, covered


def _call(conn: RedisConn, commands: list[tuple], tracked: bool) -> tuple[list, bool]:
    if conn.peer_closed:
        # The server closed it while idle (the tracker saw the FIN and has cleared the
        # cache): a new connection before this read, nothing was lost to retry.
        conn.close()
    tracker = local_layer.get() if tracked else None
    if tracker is not None and settings.PREWARM_REDIS_CLUSTER:
        tracker = tracker.towards(conn)  # tracking reports to a client on the same node
    prefix: list[tuple] = []
    epoch = None
    if tracker is not None and tracker.alive:
        epoch = tracker.epoch
        if conn.tracking_epoch != epoch:
            prefix = [("CLIENT", "TRACKING", "ON", "REDIRECT", tracker.client_id)]
    covering = conn.tracking_epoch is not None
    try:
        replies = conn.call(*prefix, *commands)
    except RedisDown as exc:  # conn closed itself
        if covering:
            _uncover(conn)
        trip(str(exc))
        raise
    except BaseException:
        # redis-py drops the socket on any exception (MemoryError, an interrupt) and the next
        # send would reconnect untracked, often on the same fd number: lose the coverage here.
        if covering:
            _uncover(conn)
        conn.close()
        raise
    if prefix:
        if isinstance(replies[0], ReplyError):
            conn.tracking_epoch = None
        else:
            conn.tracking_epoch = epoch
            tracker.cover(conn)
        replies = replies[1:]
    covered = tracker is not None and epoch is not None and conn.tracking_epoch == epoch
    return replies, covered


def hgetall_map(reply) -> dict[bytes, bytes]:
    """HGETALL's flat RESP2 array as a dict."""
    if isinstance(reply, ReplyError):
        raise RedisDown(f"Redis error: {reply}")
    return dict(zip(reply[::2], reply[1::2]))
