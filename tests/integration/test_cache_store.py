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


def test_each_entry_of_a_batch_larger_than_one_script_call_is_judged_alone(client):
    """Entries go CAS_BATCH to a script call: every answer lines up with its own entry."""
    from core.cache_store import CAS_BATCH

    store = Store(client)
    n = 2 * CAS_BATCH + 7
    keys = [f"e{i}" for i in range(n)]
    newer = set(range(0, n, 3))  # a third already hold a newer version
    for i in newer:
        client.hset(keys[i], mapping={"version": 9, "built_at": 1, "data": "newer"})
    client.hset(keys[1], mapping={"deleted": 1, "version": 4, "built_at": 1})  # a tombstone up to version 4
    entries = [(key, Entry(5, {"data": f"v{i}".encode(), "n": str(i).encode()})) for i, key in enumerate(keys)]
    written = store.write_many(entries, 100)
    assert written == [i not in newer for i in range(n)]
    assert client.hget(keys[1], "data") == b"v1" and not client.hexists(keys[1], "deleted")
    assert all(client.hget(keys[i], "data") == b"newer" for i in newer)
    assert client.hgetall(keys[2]) == {b"version": b"5", b"built_at": b"100", b"data": b"v2", b"n": b"2"}
    assert store.write_many(entries[:2], 50) == [False, False]  # the same version built earlier
