"""Redis CLIENT TRACKING for the in-process cache: one invalidation connection per process.

Data connections (api.redis_reads) run `CLIENT TRACKING ON REDIRECT <id>` towards this
connection, which is subscribed to `__redis__:invalidate`: Redis then reports every later
change, expiry or eviction of a key those connections read (flushes too). Invalidations are
applied by the background thread, and also by each request before it reads the local
cache (`sync`: one poll(2) call), so a request never serves bytes whose invalidation had
already reached this host. Losing the connection clears the cache and stops filling it
until a new connection is subscribed: invalidations may have been missed meanwhile.

We do not use redis-py's client-side cache: it needs Redis >= 7.4 and refuses Valkey,
deep-copies every hit, and cannot drop an assembled EPG when one of its fragments changes.
"""
from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable

from .connection import RedisConn, RedisDown, ReplyError
from .local_cache import LocalCache

log = logging.getLogger("prewarm.api.tracking")

INVALIDATE_CHANNEL = b"__redis__:invalidate"
TICK_SECONDS = 0.5
PING_EVERY = 2.0  # an idle connection is pinged this often ...
PING_TIMEOUT = 3.0  # ... and declared dead when nothing came back for this long
BACKOFF_MAX = 2.0


def _readable(fd: int) -> bool:
    """Data (or EOF) waiting on fd, without blocking. A fresh poll object: they are not
    safe to share between threads, and creating one costs half a microsecond."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class Tracker:
    def __init__(self, url: str, cache: LocalCache, on_tick: Callable[[], None] | None = None):
        self.url = url
        self.cache = cache
        self.on_tick = on_tick
        self.epoch = 0  # bumps on every new invalidation connection
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
            self.epoch += 1
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
        if fd is None:
            return
        if not (force or self._lock.locked() or _readable(fd)):
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
