"""One Redis connection on redis-py's Connection (hiredis parser): pipelined, errors as values, no retries.

The views need two things redis-py's client hides: knowing exactly which connection a read
went through (CLIENT TRACKING is per connection) and never reconnecting behind our back. So
we use its connection classes (TCP, TLS, Unix socket, picked by the URL's scheme) without
its pool, client or retry: a failure closes the connection and raises RedisDown, and only
the next call connects again. Measured against the hand-written client it replaced (within
1% on the views' Redis-bound rows): bench/reports/api-conn-20261202T012526Z.md.
"""
from __future__ import annotations

import functools

import hiredis
from redis.connection import Connection, parse_url
from redis.exceptions import RedisError, ResponseError

CONNECT_TIMEOUT = 1.0
SOCKET_TIMEOUT = 2.0

# An -ERR reply: a call returns it among the replies rather than raising.
ReplyError = ResponseError


class RedisDown(Exception):
    """Redis could not be reached or answered garbage: callers fall back to Postgres."""


@functools.lru_cache(maxsize=8)
def connection_kwargs(url: str) -> dict:
    """redis-py Connection arguments for a redis://, rediss:// or unix:// URL, with our policy:
    short timeouts, RESP2 (flat replies, invalidations through SUBSCRIBE), no CLIENT SETINFO
    round trips, no health-check PING and no retry. Raises ValueError on another scheme."""
    kwargs = parse_url(url)
    kwargs.setdefault("connection_class", Connection)
    kwargs.pop("retry_on_error", None)
    kwargs.update(
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        retry_on_timeout=False,
        health_check_interval=0,
        protocol=2,
        driver_info=None,
    )
    return kwargs


class RedisConn:
    """One connection: commands pipelined in one write, one reply per command out."""

    def __init__(self, url: str, *, select_db: bool = True):
        kwargs = dict(connection_kwargs(url))
        connection_class = kwargs.pop("connection_class")
        if not select_db:
            kwargs.pop("db", None)
        self.url = url
        self._conn = connection_class(**kwargs)
        self.tracking_epoch: int | None = None  # set by the tracker's users
        self.peer_closed = False  # set by the tracker when it saw the server close this socket

    def connect(self) -> None:
        self.tracking_epoch, self.peer_closed = None, False
        try:
            self._conn.connect()
        except RedisError as exc:
            self._conn.disconnect()
            raise RedisDown(f"cannot connect to Redis: {exc}") from None

    def close(self) -> None:
        self.tracking_epoch = None
        self._conn.disconnect()

    def fileno(self) -> int:
        sock = self._conn._sock  # redis-py has no public accessor; we only poll it
        if sock is None:
            raise RedisDown("connection closed")
        return sock.fileno()

    def send(self, *commands: tuple) -> None:
        conn = self._conn
        if not conn.is_connected:
            self.connect()
        # hiredis packs directly what redis-py's pack_commands would pack through its
        # serializer at 4-5x the cost (argument normalising, buffer splitting); one write.
        packed = b"".join([hiredis.pack_command(c) for c in commands])
        try:
            conn.send_packed_command([packed], check_health=False)
        except RedisError as exc:
            self.close()
            raise RedisDown(f"Redis write failed: {exc}") from None

    def read(self):
        """The next reply (a ReplyError instance for -ERR); blocks up to SOCKET_TIMEOUT."""
        try:
            return self._conn.read_response()
        except ResponseError as exc:  # an error reply: the connection is still in step
            return exc.with_traceback(None)
        except RedisError as exc:
            self.close()
            raise RedisDown(f"Redis read failed: {exc}") from None

    def pending(self) -> bool:
        """A reply is buffered or has reached the socket (never blocks, never connects)."""
        if not self._conn.is_connected:
            raise RedisDown("connection closed")
        try:
            return self._conn.can_read(0)
        except RedisError as exc:  # the server closed it
            self.close()
            raise RedisDown(f"Redis read failed: {exc}") from None

    def call(self, *commands: tuple) -> list:
        """Send the commands in one write and read all their replies: one round trip."""
        self.send(*commands)
        return [self.read() for _ in commands]

