"""Redis CLIENT TRACKING for the in-process cache: one invalidation connection per process.

Data connections (api.redis_reads) run `CLIENT TRACKING ON REDIRECT <id>` towards this
connection, which is subscribed to `__redis__:invalidate`: Redis then reports every later
change, expiry or eviction of a key those connections read (flushes too). Invalidations are
applied by the background thread, and also by each request before it reads the local
cache (`sync`: one poll(2) call), so a request never serves bytes whose invalidation had
already reached this host. Losing the connection clears the cache and stops filling it
until a new connection is subscribed: invalidations may have been missed meanwhile.

The tracker also watches the data connections that report to it (`cover`): when one closes
(the server's idle timeout, a killed client, a failover) Redis stops reporting changes to
what was read through it, so the cache is cleared; `sync` sees the server's FIN in the same
poll(2) call, and a connection closed by a failed read says so itself (`uncover`).

We do not use redis-py's client-side cache: it needs Redis >= 7.4 and refuses Valkey,
deep-copies every hit, and cannot drop an assembled EPG when one of its fragments changes.
"""
from __future__ import annotations

import itertools
import logging
import select
import threading
import time
import weakref
from collections.abc import Callable

from .connection import RedisConn, RedisDown, ReplyError
from .local_cache import LocalCache

log = logging.getLogger("prewarm.api.tracking")

INVALIDATE_CHANNEL = b"__redis__:invalidate"
TICK_SECONDS = 0.5
PING_EVERY = 2.0  # an idle connection is pinged this often ...
PING_TIMEOUT = 3.0  # ... and declared dead when nothing came back for this long
BACKOFF_MAX = 2.0
# A data connection receives nothing unasked (its invalidations come here), so it is watched
# for the server closing it only: POLLRDHUP (a FIN; POLLHUP and POLLERR are always reported).
# A reply arriving on a busy connection does not match.
PEER_CLOSED = getattr(select, "POLLRDHUP", 0)

# Epochs are unique in the process, so a data connection registered with an earlier tracker
# (tests reset it) is never taken as registered with this one.
_epochs = itertools.count(1)


class Tracker:
    def __init__(self, url: str, cache: LocalCache, on_tick: Callable[[], None] | None = None):
        self.url = url
        self.cache = cache
        self.on_tick = on_tick
        self.epoch = 0  # a new one on every new invalidation connection
        self.client_id: int | None = None
        self.alive = False
        self.error: str | None = "not connected yet"
        self._conn: RedisConn | None = None
        self._poller = None  # the background thread's (poll objects are not thread-safe)
        self._fd: int | None = None
        self._lock = threading.Lock()  # one reader of the invalidation socket at a time
        self._last_rx = 0.0
        self._last_ping = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        # Data connections reporting here, as (fd, weak ref): replaced whole, read without a lock.
        self._covered: tuple[tuple[int, weakref.ref], ...] = ()
        self._covered_lock = threading.Lock()
        self._uncovered = False  # a covered connection closed: the next sync clears the cache

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, wait: float = 0.0) -> None:
        self._thread = threading.Thread(target=self._run, name="prewarm-tracking", daemon=True)
        self._thread.start()
        if wait:
            self._connected.wait(wait)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.cache.clear(enabled=False)
        self.alive, self.error = False, "stopped"
        self._close()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._connect()
                backoff = 0.1
                while not self._stop.is_set() and self.alive:
                    poller = self._poller
                    if poller is not None:
                        poller.poll(TICK_SECONDS * 1000)
                    self.sync(force=True)
                    self._keepalive()
                    self._tick()
            except RedisDown as exc:
                self._lost(str(exc))
            except Exception as exc:  # never let the thread die: the cache would stay off
                log.exception("tracking loop failed")
                self._lost(f"{type(exc).__name__}: {exc}")
            self._close()
            self._tick()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _tick(self) -> None:
        if self.on_tick is not None:
            try:
                self.on_tick()
            except Exception:
                log.debug("tick callback failed", exc_info=True)

    def _connect(self) -> None:
        conn = RedisConn(self.url, select_db=False)  # tracking is per key name, not per db
        (client_id,) = conn.call(("CLIENT", "ID"))
        conn.send(("SUBSCRIBE", INVALIDATE_CHANNEL))
        reply = conn.read()
        if isinstance(client_id, ReplyError) or not (isinstance(reply, list) and reply[:1] == [b"subscribe"]):
            conn.close()
            raise RedisDown(f"cannot subscribe to invalidations: {client_id!r} {reply!r}")
        fd = conn.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        with self._lock:
            self._conn, self._poller, self._fd = conn, poller, fd
            self.client_id = int(client_id)
            self.epoch = next(_epochs)
            self._last_rx = self._last_ping = time.monotonic()
            self.alive, self.error = True, None
            self.cache.clear(enabled=True)
        self._connected.set()
        log.info("invalidation connection %s up (epoch %d)", self.client_id, self.epoch)

    def _lost(self, why: str) -> None:
        # Clear before flagging: a read that saw `alive` still true cannot store anyway.
        self.cache.clear(enabled=False)
        if self.alive:
            log.warning("invalidation connection lost (%s): local cache cleared", why)
        self.alive, self.error = False, why
        self._connected.clear()

    def _close(self) -> None:
        with self._lock:
            conn, self._conn, self._poller, self._fd = self._conn, None, None, None
        if conn is not None:
            conn.close()

    def _keepalive(self) -> None:
        now = time.monotonic()
        if now - self._last_rx > PING_TIMEOUT:
            raise RedisDown("invalidation connection silent (no pong)")
        if now - self._last_ping > PING_EVERY and now - self._last_rx > PING_EVERY:
            with self._lock:
                if self._conn is not None:
                    self._conn.send(("PING",))
            self._last_ping = now

    # -- invalidations -----------------------------------------------------------------

    def sync(self, force: bool = False) -> None:
        """Apply every invalidation that has reached this host. Cheap when there is none."""
        fd = self._fd
        if fd is not None:
            covered = self._covered
            poller = select.poll()  # a fresh one: poll objects are not thread-safe (~0.5 µs)
            poller.register(fd, select.POLLIN)
            for data_fd, _ref in covered:
                if data_fd != fd:
                    poller.register(data_fd, PEER_CLOSED)
            readable = False
            for ready_fd, _events in poller.poll(0):
                if ready_fd == fd:
                    readable = True
                else:
                    self._closed_by_server(ready_fd, covered)
        if self._uncovered:
            self._drop_uncovered()
        if fd is None or not (force or readable or self._lock.locked()):
            return
        with self._lock:
            conn = self._conn
            if conn is None or not self.alive:
                return
            try:
                # Non-blocking: read only what is already there.
                while conn.pending():
                    self._handle(conn.read())
            except RedisDown as exc:
                self._lost(str(exc))

    def _handle(self, msg) -> None:
        self._last_rx = time.monotonic()
        if not isinstance(msg, list) or len(msg) < 2:
            return
        kind = msg[0]
        if kind == b"message" and msg[1] == INVALIDATE_CHANNEL:
            keys = msg[2]
            if keys is None:  # FLUSHDB / FLUSHALL
                self.cache.clear()
            else:
                self.cache.invalidate([k.decode() if isinstance(k, bytes) else k for k in keys])
        # b"pong" and subscribe confirmations only prove the connection is alive

    # -- data connections ----------------------------------------------------------------

    def cover(self, conn) -> None:
        """`conn` now reports here (CLIENT TRACKING ... REDIRECT): watch it, since once it
        closes Redis stops reporting changes to the keys read through it."""
        fd = conn.fileno()
        with self._covered_lock:
            self._covered = (*self._watched_except(conn), (fd, weakref.ref(conn, self._collected)))

    def uncover(self, conn) -> None:
        """`conn` closed after reads this tracker covered: the next sync clears the cache."""
        with self._covered_lock:
            self._covered = self._watched_except(conn)
        self._uncovered = True

    def _watched_except(self, conn) -> tuple:
        """The watched connections still alive, less `conn` (caller holds _covered_lock)."""
        return tuple((f, r) for f, r in self._covered if r() not in (None, conn))

    def _collected(self, _ref) -> None:
        # A data connection went with its thread. Maybe inside the GC: set a flag, take no lock.
        self._uncovered = True

    def _closed_by_server(self, fd: int, covered) -> None:
        for data_fd, ref in covered:
            conn = ref()
            if data_fd == fd and conn is not None:
                conn.peer_closed = True  # its thread starts a new one before the next read
                self.uncover(conn)

    def _drop_uncovered(self) -> None:
        self._uncovered = False  # before the clear: a close after it is seen next time
        with self._covered_lock:
            self._covered = self._watched_except(None)
        self.cache.clear()
        log.info("a data connection closed: local cache cleared")
