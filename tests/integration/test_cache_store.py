"""The versioned store (core.cache_store) on real Redis: packed round trips, scripts reloaded
after Redis forgot them, a connection lost while idle."""
import pytest
import redis

from core.builders import Entry
from core.cache_store import Store


@pytest.fixture
def client(throwaway_redis):
    client = redis.Redis.from_url(throwaway_redis.url)
    yield client
    client.close()


def test_writes_compare_versions_and_then_commands_share_the_round_trip(client):
    store = Store(client)
    client.set("g", "here")
    written, extra = store.write_many_then(
        [("a", Entry(5, {"data": b"new"})), ("b", Entry(3, {"data": b"x"}))], 100, [("SADD", "s", "m"), ("GET", "g")]
    )
    # (The first call also loaded the scripts and sent the batch again: `then` is repeatable.)
    assert written == [True, True] and extra[1] == b"here" and client.sismember("s", "m")
    assert store.write_many([("a", Entry(4, {"data": b"old"}))], 200) == [False]  # a lower version
    assert client.hget("a", "data") == b"new"
    assert store.tombstone_many([("b", 3)], 300) == [True] and client.hget("b", "deleted") == b"1"


def test_a_redis_that_forgot_the_scripts_gets_them_again(client):
    store = Store(client)
    client.script_flush()
    assert store.write_many([("a", Entry(1, {"data": b"v1"}))], 1) == [True]
    assert client.hget("a", "data") == b"v1"


def test_a_restarted_redis_is_written_on_the_next_call(client, throwaway_redis):
    store = Store(client)
    assert store.write_many([("a", Entry(1, {"data": b"v1"}))], 1) == [True]  # a pooled connection now
    throwaway_redis.stop()
    throwaway_redis.start()  # empty, no scripts; the pooled connection is dead
    assert store.write_many([("a", Entry(2, {"data": b"v2"}))], 2) == [True]
    assert client.hget("a", "data") == b"v2"
