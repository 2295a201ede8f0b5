"""The viewer API on a Redis Cluster: each read goes to the node that owns its slot, and one
invalidation connection per node keeps the in-process layer exact.

Every call of api.redis_reads names keys of one slot (one hash, or one guide's fragments,
which share a hash tag). The slot map comes from CLUSTER SLOTS and is read again when a
node answers MOVED or ASK, or when a node cannot be reached. CLIENT TRACKING is per
connection and its REDIRECT target must be a client of the same server, so a data
connection to a node reports to that node's own Tracker; the trackers share one
LocalCache. A tracker that loses its connection clears the whole cache (entries may
combine keys of several nodes), and reads through its node are not stored until it is back.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from .connection import RedisConn, RedisDown, ReplyError
from .local_cache import LocalCache
from .tracking import Tracker


def node_url(url: str, host: str, port: int) -> str:
    """`url` (scheme, credentials, options) pointed at another node."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@{host}:{port}" if auth else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc, path=""))


def moved(replies: list) -> bool:
    """A reply says a slot lives elsewhere now (the command did not run there)."""
    return any(isinstance(r, ReplyError) and str(r).startswith(("MOVED ", "ASK ")) for r in replies)


class SlotMap:
    """slot -> the URL of the primary that owns it, from CLUSTER SLOTS on a known node."""

    def __init__(self, url: str):
        self.url = url
        self.owner: list[str] = []
        self._lock = threading.Lock()

    def node_for(self, commands: list[tuple]) -> str:
        """The URL of the node that owns the first command's key."""
        owner = self.owner or self.refresh()
        key = commands[0][1]
        return owner[key_slot(key.encode() if isinstance(key, str) else key)]

    def nodes(self) -> list[str]:
        return sorted(set(self.owner or self.refresh()))

    def refresh(self) -> list[str]:
        with self._lock:
            errors = []
            for url in [self.url, *sorted(set(self.owner) - {self.url})]:
                try:
                    owner = self._read(url)
                except RedisDown as exc:
                    errors.append(str(exc))
                    continue
                self.owner = owner
                return owner
            raise RedisDown(f"no cluster node answered CLUSTER SLOTS: {'; '.join(errors)}")

    def _read(self, url: str) -> list[str]:
        conn = RedisConn(url, select_db=False)
        try:
            (reply,) = conn.call(("CLUSTER", "SLOTS"))
        finally:
            conn.close()
        if isinstance(reply, ReplyError):
            raise RedisDown(f"CLUSTER SLOTS: {reply}")
        owner = [""] * REDIS_CLUSTER_HASH_SLOTS
        seed = urlsplit(url).hostname
        for first, last, primary, *_replicas in reply:
            host = primary[0].decode() if primary[0] else seed  # an empty host: the node we asked
            owner[first : last + 1] = [node_url(self.url, host, int(primary[1]))] * (last - first + 1)
        if "" in owner:
            raise RedisDown("the cluster does not cover every slot")
        return owner


_maps: dict[str, SlotMap] = {}


def slot_map(url: str) -> SlotMap:
    """The process's map of the cluster `url` names (plain data: it survives a fork)."""
    found = _maps.get(url)
    if found is None:
        found = _maps[url] = SlotMap(url)
    return found


class ClusterTracker:
    """Tracker's interface over one Tracker per node, all feeding one LocalCache."""

    def __init__(self, slots: SlotMap, cache: LocalCache, on_tick: Callable[[], None] | None = None):
        self.slots, self.cache, self.on_tick = slots, cache, on_tick
        self.nodes: dict[str, Tracker] = {}
        self._lock = threading.Lock()
        self._wait = 0.0

    def start(self, wait: float = 0.0) -> None:
        self._wait = wait
        try:
            for url in self.slots.nodes():
                self._node(url)
        except RedisDown:
            pass  # the first read through each node starts its tracker

    def _node(self, url: str) -> Tracker:
        tracker = self.nodes.get(url)
        if tracker is None:
            with self._lock:
                tracker = self.nodes.get(url)
                if tracker is None:
                    # One metrics flush per process: the first node's tracker ticks it.
                    tracker = Tracker(url, self.cache, on_tick=None if self.nodes else self.on_tick)
                    tracker.start(wait=self._wait)
                    self.nodes = {**self.nodes, url: tracker}
        return tracker

    def towards(self, conn) -> Tracker:
        """The tracker a data connection reports to: the one on its node."""
        return self._node(conn.url)

    def stop(self) -> None:
        for tracker in self.nodes.values():
            tracker.stop()

    def sync(self, force: bool = False) -> None:
        for tracker in self.nodes.values():
            tracker.sync(force)

    def uncover(self, conn) -> None:
        self.towards(conn).uncover(conn)

    @property
    def alive(self) -> bool:
        return bool(self.nodes) and all(t.alive for t in self.nodes.values())

    @property
    def error(self) -> str | None:
        if not self.nodes:
            return "not connected yet"
        return next((f"{url}: {t.error}" for url, t in self.nodes.items() if t.error), None)


# -- the data connections: one per node and thread -----------------------------------------

_local = threading.local()


def conn_for(slots: SlotMap, commands: list[tuple]) -> RedisConn:
    """This thread's connection to the node that owns the commands' slot."""
    url = slots.node_for(commands)
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    conn = conns.get(url)
    if conn is None:
        conn = conns[url] = RedisConn(url)
    return conn


def thread_conns() -> list[RedisConn]:
    return list(getattr(_local, "conns", {}).values())


def forget_conns() -> None:
    """Drop this thread's connections (the caller closed them), or a forked child's."""
    global _local
    _local = threading.local()
