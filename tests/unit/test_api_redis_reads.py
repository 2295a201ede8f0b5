"""redis_reads.call with a fake connection and tracker: the tracking prefix, `covered`, the breaker."""
import time
from types import SimpleNamespace

import pytest
from django.conf import settings
from redis.exceptions import ResponseError

from api import local_layer, redis_reads
from api.connection import RedisDown


class FakeConn:
    """Answers each command from a script; remembers every call's commands."""

    def __init__(self, url):
        self.url = url
        self.tracking_epoch = None
        self.peer_closed = False
        self.calls = []
        self.fail = None
        self.refuse_tracking = False
        self.closed = 0

    def call(self, *commands):
        if self.fail is not None:
            self.tracking_epoch = None  # as RedisConn does: a failure closes it
            raise self.fail
        self.calls.append(commands)
        return [ResponseError("ERR refused") if self.refuse_tracking and c[:2] == ("CLIENT", "TRACKING")
                else f"reply to {c[0]}".encode() for c in commands]

    def close(self):
        self.tracking_epoch, self.peer_closed = None, False
        self.closed += 1


class FakeTracker:
    def __init__(self):
        self.alive, self.epoch, self.client_id = True, 7, 42
        self.covered, self.uncovered = [], []

    def cover(self, conn):
        self.covered.append(conn)

    def uncover(self, conn):
        self.uncovered.append(conn)


@pytest.fixture
def fake(monkeypatch):
    conn, tracker = FakeConn(settings.REDIS_URL), FakeTracker()
    monkeypatch.setattr(redis_reads._local, "conn", conn, raising=False)
    monkeypatch.setitem(local_layer._state, "tracker", tracker)
    monkeypatch.setitem(redis_reads._breaker, "until", 0.0)
    return conn, tracker


TRACKING_ON = ("CLIENT", "TRACKING", "ON", "REDIRECT", 42)


def test_the_first_tracked_read_turns_tracking_on_in_the_same_round_trip(fake):
    conn, tracker = fake
    replies, covered = redis_reads.call([("HGETALL", "k")], tracked=True)
    assert conn.calls == [(TRACKING_ON, ("HGETALL", "k"))]
    assert replies == [b"reply to HGETALL"] and covered
    assert conn.tracking_epoch == 7 and tracker.covered == [conn]
    replies, covered = redis_reads.call([("HGETALL", "k")], tracked=True)
    assert conn.calls[-1] == (("HGETALL", "k"),) and covered


def test_a_new_invalidation_connection_registers_again(fake):
    conn, tracker = fake
    redis_reads.call([("HGETALL", "k")], tracked=True)
    tracker.epoch, tracker.client_id = 8, 43
    _, covered = redis_reads.call([("HGETALL", "k")], tracked=True)
    assert conn.calls[-1][0] == ("CLIENT", "TRACKING", "ON", "REDIRECT", 43) and covered
    assert conn.tracking_epoch == 8


def test_refused_tracking_is_not_covered_and_is_asked_again(fake):
    conn, tracker = fake
    conn.refuse_tracking = True
    replies, covered = redis_reads.call([("HGETALL", "k")], tracked=True)
    assert replies == [b"reply to HGETALL"] and not covered
    assert conn.tracking_epoch is None and tracker.covered == []
    conn.refuse_tracking = False
    _, covered = redis_reads.call([("HGETALL", "k")], tracked=True)
    assert conn.calls[-1][0] == TRACKING_ON and covered


def test_nothing_is_covered_while_tracking_is_down_or_not_asked_for(fake):
    conn, tracker = fake
    _, covered = redis_reads.call([("GET", "k")], tracked=False)
    assert conn.calls[-1] == (("GET", "k"),) and not covered
    tracker.alive = False
    _, covered = redis_reads.call([("GET", "k")], tracked=True)
    assert conn.calls[-1] == (("GET", "k"),) and not covered


def test_a_read_registered_with_an_older_epoch_is_not_covered(fake):
    conn, tracker = fake
    redis_reads.call([("GET", "k")], tracked=True)
    tracker.alive = False  # lost: its invalidations may have been missed
    tracker.epoch = 9
    _, covered = redis_reads.call([("GET", "k")], tracked=True)
    assert not covered


def test_a_failure_trips_the_breaker_uncovers_and_is_not_retried(fake, monkeypatch):
    conn, tracker = fake
    redis_reads.call([("GET", "k")], tracked=True)
    conn.fail = RedisDown("Redis read failed: Connection reset by peer")
    sent = len(conn.calls)
    with pytest.raises(RedisDown, match="reset by peer"):
        redis_reads.call([("GET", "k")], tracked=True)
    assert len(conn.calls) == sent and tracker.uncovered == [conn]
    assert "reset by peer" in redis_reads.down()
    conn.fail = None
    with pytest.raises(RedisDown, match="reset by peer"):  # open: Redis is not even asked
        redis_reads.call([("GET", "k")], tracked=True)
    assert len(conn.calls) == sent
    later = time.monotonic() + redis_reads.BREAKER_SECONDS + 0.01
    monkeypatch.setattr(redis_reads, "time", SimpleNamespace(monotonic=lambda: later))
    assert redis_reads.down() is None
    _, covered = redis_reads.call([("GET", "k")], tracked=True)
    assert conn.calls[-1] == (TRACKING_ON, ("GET", "k")) and covered


def test_a_non_redis_exception_mid_call_uncovers_and_closes_the_connection(fake):
    """redis-py closes its socket on any exception; the next send would reconnect untracked."""
    conn, tracker = fake
    redis_reads.call([("GET", "k")], tracked=True)
    closed = conn.closed
    conn.fail = MemoryError()
    with pytest.raises(MemoryError):
        redis_reads.call([("GET", "k")], tracked=True)
    assert tracker.uncovered == [conn] and conn.closed == closed + 1
    assert redis_reads.down() is None  # not a Redis fault: the breaker stays closed


def test_an_uncovered_connection_fails_without_telling_the_tracker(fake):
    conn, tracker = fake
    conn.fail = RedisDown("cannot connect to Redis: refused")
    with pytest.raises(RedisDown):
        redis_reads.call([("GET", "k")], tracked=True)
    assert tracker.uncovered == []


def test_a_connection_the_server_closed_is_replaced_before_the_read(fake):
    conn, tracker = fake
    redis_reads.call([("GET", "k")], tracked=True)
    conn.peer_closed = True  # what the tracker sets when it sees the FIN
    _, covered = redis_reads.call([("GET", "k")], tracked=True)
    assert conn.closed == 1 and conn.calls[-1] == (TRACKING_ON, ("GET", "k")) and covered


def test_reset_and_a_new_url_close_the_connection_and_uncover_it(fake, settings):
    conn, tracker = fake
    redis_reads.call([("GET", "k")], tracked=True)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    new = redis_reads._conn()
    assert new is not conn and new.url == "redis://127.0.0.1:1/0"
    assert conn.closed == 1 and tracker.uncovered == [conn]
    redis_reads.reset()
    assert tracker.uncovered == [conn]  # the new one never reported to the tracker


def test_hgetall_map():
    assert redis_reads.hgetall_map([b"a", b"1", b"b", b"2"]) == {b"a": b"1", b"b": b"2"}
    assert redis_reads.hgetall_map([]) == {}
    with pytest.raises(RedisDown, match="WRONGTYPE"):
        redis_reads.hgetall_map(ResponseError("WRONGTYPE Operation against a key"))


def test_a_forked_child_starts_with_no_connection_no_open_breaker_and_a_free_lock():
    import os

    redis_reads.trip("Redis read failed: reset")
    with local_layer._state_lock:  # held by this thread while another one forks
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what it inherited, then leave at once
            ok = redis_reads.down() is None and local_layer._state_lock.acquire(timeout=1)
            os.write(write, b"1" if ok and getattr(redis_reads._local, "conn", None) is None else b"0")
            os._exit(0)
    os.waitpid(pid, 0)
    answer = os.read(read, 1)
    os.close(read)
    os.close(write)
    redis_reads._breaker.update(until=0.0, error=None)
    assert answer == b"1"
