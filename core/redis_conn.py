"""One raw Redis client per process for the cache (bytes in, bytes out): a Redis, or a
RedisCluster when the cache is a cluster (settings.PREWARM_REDIS_CLUSTER)."""
import functools
import time
from collections import defaultdict

import hiredis
import redis
from django.conf import settings
from redis.cluster import RedisCluster

# Short timeouts: a view falls back to Postgres rather than hang on a sick Redis.
SOCKET_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0


@functools.cache
def client() -> redis.Redis | RedisCluster:
    factory = RedisCluster if settings.PREWARM_REDIS_CLUSTER else redis.Redis
    return factory.from_url(
        settings.REDIS_URL,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
    )


def is_cluster(r=None) -> bool:
    return isinstance(r if r is not None else client(), RedisCluster)


def reset() -> None:
    """Forget the cached client (tests that change REDIS_URL, forked processes)."""
    client.cache_clear()


UNLINK_BATCH = 10_000


def unlink_prefix(prefix: str) -> int:
    """Delete every key under `prefix:` (SCAN and UNLINK in batches, never KEYS or FLUSHDB:
    other prefixes and the broker may share the database); returns how many went."""
    r, gone, batch = client(), 0, []
    # On a cluster scan_iter walks every primary, and UNLINK is split per slot by redis-py.
    for key in r.scan_iter(match=f"{prefix}:*", count=UNLINK_BATCH):
        batch.append(key)
        if len(batch) >= UNLINK_BATCH:
            gone += r.unlink(*batch)
            batch.clear()
    if batch:
        gone += r.unlink(*batch)
    return gone


class Sent:
    """Commands sent on a pooled connection in one write; their replies read when asked for, so
    the caller can work while Redis answers (an error reply comes back as its exception).

    Measured per profile entry read: redis-py's pipeline ~12 us to pack, send and parse; one
    packed write and a hiredis Reader on the socket ~3 us. At 1M profiles that is 9 s of CPU."""

    def __new__(cls, commands: list[tuple], on=None):
        # On a cluster the commands go to the nodes that own their keys (ClusterSent).
        if cls is Sent and is_cluster(on):
            cls = ClusterSent
        return super().__new__(cls)

    def __init__(self, commands: list[tuple], on: redis.Redis | None = None):
        self.count = len(commands)
        self.pool = (on or client()).connection_pool
        self.conn = self.pool.get_connection()
        self.read = False
        try:
            self.conn.send_packed_command([b"".join([hiredis.pack_command(c) for c in commands])], check_health=False)
        except BaseException:
            self.close()
            raise

    def replies(self) -> list:
        try:
            replies = _read_replies(self.conn, self.count)
            self.read = True
            return replies
        finally:
            self.close()

    def close(self) -> None:
        if self.conn is None:
            return
        if not self.read:
            self.conn.disconnect()  # replies still on the way: the connection is out of step
        self.pool.release(self.conn)
        self.conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def round_trip(commands: list[tuple], on: redis.Redis | None = None) -> list:
    """Send the commands in one write on a connection of `on`'s pool (the cache client's by
    default) and read every reply (error replies as exceptions).

    A connection that died while idle in the pool (Redis restarted, the server's idle
    timeout) fails the first try, so a lost connection is tried once more, on a new one, as
    redis-py's own client would: only for commands that are safe to repeat."""
    for attempt in (1, 2):
        try:
            with Sent(commands, on) as sent:
                return sent.replies()
        except (redis.ConnectionError, redis.TimeoutError):
            if attempt == 2:
                raise
            if is_cluster(on):
                refresh_slots(on or client())  # a node may have failed over
    raise AssertionError("unreachable")


# -- Redis Cluster ---------------------------------------------------------------------------
# The cache's keys are spread over the cluster's nodes by slot. A batch of commands is sent
# as one packed write per node (each node's commands in their order), all of them before any
# reply is read, so a batch still costs one round trip (the nodes answer in parallel).
# Commands that read or write several keys (scripts) must name keys of one slot: the callers
# group them (core.cache_store) or the keys share a hash tag (core.keys).

# A slot that moved (MOVED/ASK: resharding, a failover) is asked again this many times.
REDIRECTS = 3
TRYAGAIN_SECONDS = 0.05


def command_key(command: tuple):
    """The first key a command names (its slot routes it); None for a command with no key."""
    name = command[0].upper() if isinstance(command[0], str) else command[0].decode().upper()
    if name in ("EVAL", "EVALSHA", "FCALL"):
        return command[3] if int(command[2]) > 0 else None
    return command[1] if len(command) > 1 else None


def refresh_slots(r: RedisCluster) -> None:
    """Ask the cluster again which node owns which slot."""
    try:
        r.nodes_manager.initialize()
    except redis.RedisError:
        pass  # the next command fails on its own and says why


def by_node(r: RedisCluster, commands: list[tuple]) -> dict:
    """node -> indices of the commands whose first key it owns (a keyless one: any primary)."""
    out: dict = defaultdict(list)
    slots = r.nodes_manager
    for i, command in enumerate(commands):
        key = command_key(command)
        node = slots.get_node_from_slot(r.keyslot(key)) if key is not None else r.get_primaries()[0]
        out[node].append(i)
    return out


def _redirect(reply) -> tuple[str, str] | None:
    """(kind, 'host:port') of a MOVED or ASK reply; ('TRYAGAIN', '') for a TRYAGAIN one."""
    if isinstance(reply, redis.ResponseError):
        text = str(reply)
        if text.startswith(("MOVED ", "ASK ")):
            kind, _slot, target = text.split()[:3]
            return kind, target
        if text.startswith("TRYAGAIN"):
            return "TRYAGAIN", ""
    return None


class ClusterSent(Sent):
    """Sent on a cluster: one Sent per node that owns some of the commands' keys. A reply that
    says the slot moved (MOVED, ASK, TRYAGAIN: the command did not run) is asked again where
    it now lives, when the replies are read; the other replies keep their places."""

    def __init__(self, commands: list[tuple], on: RedisCluster | None = None):
        self.cluster = on if on is not None else client()
        self.commands, self.count, self.parts = commands, len(commands), []
        try:
            for node, indices in by_node(self.cluster, commands).items():
                conn = self.cluster.get_redis_connection(node)
                self.parts.append((indices, Sent([commands[i] for i in indices], conn)))
        except BaseException:
            self.close()
            raise

    def replies(self) -> list:
        out: list = [None] * self.count
        try:
            for indices, sent in self.parts:
                for i, reply in zip(indices, sent.replies()):
                    out[i] = reply
        finally:
            self.close()
        for _ in range(REDIRECTS):
            moved = [(i, how) for i, reply in enumerate(out) if (how := _redirect(reply))]
            if not moved:
                break
            self._again(out, moved)
        return out

    def _again(self, out: list, moved: list) -> None:
        if any(kind == "MOVED" for _, (kind, _) in moved):
            refresh_slots(self.cluster)
        if any(kind == "TRYAGAIN" for _, (kind, _) in moved):
            time.sleep(TRYAGAIN_SECONDS)
        asked = [(i, target) for i, (kind, target) in moved if kind == "ASK"]
        rest = [i for i, (kind, _) in moved if kind != "ASK"]
        if rest:
            for i, reply in zip(rest, round_trip([self.commands[i] for i in rest], self.cluster)):
                out[i] = reply
        for i, target in asked:  # a slot being migrated: this key is already on the target
            host, _, port = target.rpartition(":")
            node = self.cluster.get_node(host=host, port=int(port))
            if node is None:
                refresh_slots(self.cluster)
                out[i] = round_trip([self.commands[i]], self.cluster)[0]
            else:
                conn = self.cluster.get_redis_connection(node)
                out[i] = round_trip([("ASKING",), self.commands[i]], conn)[1]

    def close(self) -> None:
        for _, sent in self.parts:
            sent.close()


def _read_replies(conn, count: int) -> list:
    # redis-py has no public way to read n replies in bulk; its parser holds nothing here (every
    # earlier reply on this connection was read), so a Reader of our own takes the socket over.
    sock = conn._sock
    reader = hiredis.Reader(replyError=redis.ResponseError)
    replies: list = []
    try:
        while len(replies) < count:
            reply = reader.gets()
            if reply is False:
                data = sock.recv(1 << 20)
                if not data:
                    raise redis.ConnectionError("Redis closed the connection")
                reader.feed(data)
                continue
            replies.append(reply)
    except OSError as exc:  # a timeout or a reset, as redis-py would name it
        raise redis.ConnectionError(f"Error reading from Redis: {exc}") from None
    return replies
