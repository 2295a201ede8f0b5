"""The tracker's watch over data connections, on socket pairs: a closed one clears the local cache."""
import gc
import socket

import pytest

from api.local_cache import LocalCache
from api.tracking import Tracker


class DataConn:
    """A data connection's side of a socket pair; the test holds the server's side."""

    opened: list[socket.socket] = []

    def __init__(self):
        self.sock, self.server = socket.socketpair()
        self.opened += [self.sock, self.server]
        self.peer_closed = False

    def fileno(self):
        return self.sock.fileno()


@pytest.fixture(autouse=True)
def _close_sockets():
    yield
    while DataConn.opened:
        DataConn.opened.pop().close()


@pytest.fixture
def tracker():
    t = Tracker("redis://cache", LocalCache(100, 100_000))
    t.cache.clear(enabled=True)
    ours, theirs = socket.socketpair()  # stands in for the invalidation connection
    t._fd, t.alive = ours.fileno(), True
    yield t
    ours.close()
    theirs.close()


def stored(t, key="profile:1"):
    assert t.cache.commit(t.cache.begin([key]), key, b"bytes")
    return key


def test_a_reply_on_a_busy_data_connection_is_not_a_close(tracker):
    conn = DataConn()
    tracker.cover(conn)
    key = stored(tracker)
    conn.server.sendall(b"+OK\r\n")  # a reply the connection's thread has not read yet
    tracker.sync()
    assert tracker.cache.get(key) == b"bytes" and not conn.peer_closed


def test_the_server_closing_a_data_connection_clears_the_cache_at_the_next_sync(tracker):
    conn = DataConn()
    tracker.cover(conn)
    key = stored(tracker)
    ticket = tracker.cache.begin(["profile:2"])  # a read in flight elsewhere
    conn.server.close()  # CLIENT KILL, the server's idle timeout, a failover
    tracker.sync()
    assert tracker.cache.get(key) is None and not ticket.valid
    assert conn.peer_closed and tracker._covered == ()
    key = stored(tracker)
    tracker.sync()  # seen once: the next entries stay
    assert tracker.cache.get(key) == b"bytes"


def test_a_data_connection_closed_by_a_failed_read_clears_the_cache(tracker):
    conn = DataConn()
    tracker.cover(conn)
    key = stored(tracker)
    tracker.uncover(conn)
    assert tracker.cache.get(key) == b"bytes"  # until the next sync, which every request runs first
    tracker.sync()
    assert tracker.cache.get(key) is None and tracker._covered == ()


def test_a_data_connection_dropped_with_its_thread_clears_the_cache(tracker):
    conn = DataConn()
    tracker.cover(conn)
    key = stored(tracker)
    del conn
    gc.collect()
    tracker.sync()
    assert tracker.cache.get(key) is None and tracker._covered == ()


def test_covering_again_keeps_one_watch_per_connection(tracker):
    a, b = DataConn(), DataConn()
    tracker.cover(a)
    tracker.cover(b)
    tracker.cover(a)
    assert [ref() for _fd, ref in tracker._covered] == [b, a]
    b.server.close()
    tracker.sync()
    assert b.peer_closed and not a.peer_closed
    assert [ref() for _fd, ref in tracker._covered] == [a]
