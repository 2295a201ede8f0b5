"""A minimal RESP2 connection on a plain socket with hiredis: no pool, no hidden reconnects.

The views need two things redis-py's client hides: knowing exactly which connection a read
went through (CLIENT TRACKING is per connection) and never reconnecting behind our back.
"""
from __future__ import annotations

import socket
import ssl
from urllib.parse import unquote, urlparse

import hiredis

CONNECT_TIMEOUT = 1.0
SOCKET_TIMEOUT = 2.0
READ_CHUNK = 256 * 1024

ReplyError = hiredis.ReplyError


from .connection import RedisDown  # noqa: E402


def params_from_url(url: str) -> dict:
    """host/port or path, db, username, password and tls from a redis:// URL."""
    parts = urlparse(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}")
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    db = query.get("db")
    if db is None and parts.scheme != "unix" and parts.path.strip("/"):
        db = parts.path.strip("/")
    return {
        "host": parts.hostname or "localhost",
        "port": parts.port or 6379,
        "path": parts.path if parts.scheme == "unix" else None,
        "db": int(db or 0),
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "tls": parts.scheme == "rediss",
    }


class RespConn:
    """One Redis connection: pipelined commands in, hiredis replies out (errors as values)."""

    def __init__(self, url: str, *, select_db: bool = True):
        self.url = url
        self.params = params_from_url(url)
        self.peer_closed = False
        self.select_db = select_db
        self.sock: socket.socket | None = None
        self.reader: hiredis.Reader | None = None
        self._buf = bytearray(READ_CHUNK)
        self.tracking_epoch: int | None = None  # set by the tracker's users

    @property
    def connected(self) -> bool:
        return self.sock is not None

    def connect(self) -> None:
        p = self.params
        try:
            if p["path"]:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(CONNECT_TIMEOUT)
                sock.connect(p["path"])
            else:
                sock = socket.create_connection((p["host"], p["port"]), timeout=CONNECT_TIMEOUT)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if p["tls"]:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=p["host"])
            sock.settimeout(SOCKET_TIMEOUT)
        except OSError as exc:
            raise RedisDown(f"cannot connect to Redis: {exc}") from None
        self.sock, self.reader, self.tracking_epoch, self.peer_closed = sock, hiredis.Reader(), None, False
        hello = []
        if p["password"]:
            hello.append(("AUTH", p["username"], p["password"]) if p["username"] else ("AUTH", p["password"]))
        if self.select_db and p["db"]:
            hello.append(("SELECT", p["db"]))
        if hello:
            for reply in self.call(*hello):
                if isinstance(reply, ReplyError):
                    self.close()
                    raise RedisDown(f"Redis refused the handshake: {reply}")

    def __del__(self):
        # Per-thread connections die with their thread: close quietly, not by the GC.
        self.close()

    def close(self) -> None:
        sock, self.sock, self.reader, self.tracking_epoch = self.sock, None, None, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def send(self, *commands: tuple) -> None:
        if self.sock is None:
            self.connect()
        try:
            self.sock.sendall(b"".join(hiredis.pack_command(c) for c in commands))
        except OSError as exc:
            self.close()
            raise RedisDown(f"Redis write failed: {exc}") from None

    def read(self):
        """The next reply (a ReplyError instance for -ERR); blocks up to SOCKET_TIMEOUT."""
        reader = self.reader
        if reader is None:
            raise RedisDown("connection closed")
        try:
            reply = reader.gets()
            while reply is False:
                n = self.sock.recv_into(self._buf)
                if not n:
                    raise OSError("Redis closed the connection")
                reader.feed(self._buf, 0, n)
                reply = reader.gets()
        except (OSError, hiredis.ProtocolError) as exc:
            self.close()
            raise RedisDown(f"Redis read failed: {exc}") from None
        return reply

    def has_buffered(self) -> bool:
        return self.reader is not None and self.reader.has_data()

    def fileno(self) -> int:
        if self.sock is None:
            raise RedisDown("connection closed")
        return self.sock.fileno()

    def pending(self) -> bool:
        if self.reader is None:
            raise RedisDown("connection closed")
        if self.reader.has_data():
            return True
        import select

        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))

    def call(self, *commands: tuple) -> list:
        """Send the commands in one write and read all their replies: one round trip."""
        self.send(*commands)
        return [self.read() for _ in commands]
