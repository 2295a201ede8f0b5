"""The broker transport (workers.broker): kombu's Redis transport keeping one client per channel."""
import threading

import pytest
from kombu import Connection

from workers import broker
from workers.app import app


def test_the_app_uses_the_transport_on_a_redis_broker():
    from django.conf import settings

    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("the broker under test is not Redis")
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, broker.Transport)
        assert isinstance(conn.default_channel, broker.Channel)


def _put_twice(channel, queue):
    clients = []
    for n in range(2):
        with channel.conn_or_acquire() as client:
            clients.append(client)
        channel._put(queue, {"body": n, "properties": {"delivery_tag": str(n)}})
    return clients


def test_publishes_and_bookkeeping_share_one_client_per_pool(throwaway_redis):
    with Connection(throwaway_redis.url, transport=broker.Transport) as conn:
        channel = conn.default_channel
        first, second = _put_twice(channel, "q")
        assert first is second  # stock kombu builds a new redis.Redis for every call
        assert channel.client.llen("q") == 2

        # kombu drops its pools after a lost connection: the next call uses the new pool.
        channel._disconnect_pools()
        third, _ = _put_twice(channel, "q")
        assert third is not first and third.connection_pool is channel.pool
        assert channel.client.llen("q") == 4


def test_a_restarted_server_is_reached_again(throwaway_redis):
    with Connection(throwaway_redis.url, transport=broker.Transport) as conn:
        channel = conn.default_channel
        _put_twice(channel, "q")
        throwaway_redis.stop()
        throwaway_redis.start()  # empty: no persistence
        # The pooled connection is dead; redis-py reconnects on the next command.
        channel._put("q", {"body": "after", "properties": {"delivery_tag": "x"}})
        assert channel.client.llen("q") == 1


def _taken(channel, queue):
    """A message taken from `queue` as the consumer takes one (BRPOP), before its bookkeeping."""
    message = channel.basic_get(queue, no_ack=True)
    assert message is not None
    message.delivery_info.update(exchange="", routing_key=queue)
    return message


def _put_one(channel, queue, tag):
    channel._put(queue, {"body": "task", "properties": {"delivery_tag": tag}, "headers": {},
                         "content-type": "text/plain", "content-encoding": "utf-8"})


def _killed_after_running(url, call):
    """Run `call` while Redis is paused, with a kill of every other client waiting behind its
    commands: Redis runs them, then kills their connection before the reply is sent."""
    import redis

    control, killer = redis.Redis.from_url(url), redis.Redis.from_url(url)
    killer.ping()  # connected now: a handshake during the pause would make its kill come last
    kill = threading.Timer(0.1, lambda: killer.client_kill_filter(_type="normal", skipme=True))
    control.client_pause(300, all=True)
    kill.start()
    try:
        call()
    finally:
        kill.join()
    return killer


def test_a_delivery_whose_bookkeeping_reply_is_lost_is_restored_on_close(throwaway_redis):
    """Stock kombu raised before it counted the message as delivered: closing the channel did
    not restore it, and its `unacked` entry waited for the visibility timeout (600 s), with a
    worker that never ran the task."""
    with Connection(throwaway_redis.url, transport=broker.Transport) as conn:
        channel = conn.default_channel
        _put_one(channel, "q", "t1")
        message = _taken(channel, "q")
        check = _killed_after_running(throwaway_redis.url, lambda: channel.qos.append(message, "t1"))
        assert check.hexists("unacked", "t1")
        conn.maybe_close_channel(channel)  # what the consumer does after losing the connection
    assert check.hlen("unacked") == 0 and check.llen("q") == 1  # back in the queue, for the next consumer


def test_a_restore_whose_connection_dies_is_done_on_another(throwaway_redis):
    """The channel of a consumer that lost its connection restores its deliveries on a new
    one; when that one died too (clients killed in a row), stock kombu gave up, the error was
    swallowed with the channel, and the message waited in `unacked` for the visibility timeout."""
    with Connection(throwaway_redis.url, transport=broker.Transport) as conn:
        channel = conn.default_channel
        _put_one(channel, "q", "t1")
        channel.qos.append(_taken(channel, "q"), "t1")
        check = _killed_after_running(throwaway_redis.url, lambda: conn.maybe_close_channel(channel))
    assert check.hlen("unacked") == 0 and check.llen("q") == 1


def test_a_delivery_record_is_read_back_by_the_ack_not_before_the_task(throwaway_redis):
    """The `unacked` record is sent and the task may start; its replies wait for the next
    bookkeeping call, so the task's way has no broker round trip before it."""
    import redis

    with Connection(throwaway_redis.url, transport=broker.Transport) as conn:
        channel = conn.default_channel
        _put_one(channel, "q", "t1")
        channel.qos.append(_taken(channel, "q"), "t1")
        assert channel.qos._pending is not None  # sent, replies unread
        check = redis.Redis.from_url(throwaway_redis.url)
        channel.qos.settle()
        assert channel.qos._pending is None and check.hexists("unacked", "t1")
        assert check.zscore("unacked_index", "t1") is not None
        channel.qos.ack("t1")
        assert check.hlen("unacked") == 0 and check.zcard("unacked_index") == 0


def test_a_delivery_record_sent_on_a_dead_connection_is_sent_again(throwaway_redis):
    """The pooled connection died before the record went out (Redis killed it while the
    worker was idle): its replies never come, and the next bookkeeping call sends it again."""
    import redis

    with Connection(throwaway_redis.url, transport=broker.Transport) as conn:
        channel = conn.default_channel
        _put_one(channel, "q", "t1")
        message = _taken(channel, "q")
        check = redis.Redis.from_url(throwaway_redis.url)
        check.client_kill_filter(_type="normal", skipme=True)  # every pooled connection, silently
        channel.qos.append(message, "t1")
        channel.qos.ack("t2")  # another delivery's ack: reads t1's replies first
        assert check.hexists("unacked", "t1")
        channel.qos.ack("t1")
        assert check.hlen("unacked") == 0


def test_a_closed_channel_puts_back_a_delivery_whose_record_replies_were_unread(throwaway_redis):
    import redis

    with Connection(throwaway_redis.url, transport=broker.Transport) as conn:
        channel = conn.default_channel
        _put_one(channel, "q", "t1")
        channel.qos.append(_taken(channel, "q"), "t1")
        conn.maybe_close_channel(channel)  # a worker's warm shutdown with the task unfinished
    check = redis.Redis.from_url(throwaway_redis.url)
    assert check.hlen("unacked") == 0 and check.llen("q") == 1


def _without_ids(message: dict) -> dict:
    """The envelope with what differs between two sends of the same task blanked."""
    import base64
    import json

    headers = dict(message["headers"], id="", root_id="")
    properties = dict(message["properties"], correlation_id="", delivery_tag="")
    body = json.loads(base64.b64decode(message["body"]))
    return dict(message, headers=headers, properties=properties, body=body)


def test_a_task_pushed_directly_is_the_message_celery_would_send():
    """broker.send_task skips Celery's publish; a worker must not see the difference. As
    Celery's from a producer that has not imported the task (the relay, a web process): the
    time limits are the worker's own (a process that registered the task would copy them
    from its options into the message, the same values)."""
    import json

    import redis
    from django.conf import settings

    if not broker._direct(app):
        pytest.skip("the broker under test is not a plain Redis")
    queue, name = "test-direct-envelope", "prewarm.test-unregistered"
    check = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    args, kwargs = ("profile", [3, 1, 2], 1.25), {"seen_at": 1.5, "sent_at": 2.5, "ticket": "rabc:0"}
    try:
        app.send_task(name, args, kwargs, queue=queue, argsrepr="(a)", kwargsrepr="{k}")
        broker.send_task(app, name, args, kwargs, queue=queue, argsrepr="(a)", kwargsrepr="{k}")
        celerys, ours = (json.loads(check.rpop(queue)) for _ in range(2))
    finally:
        check.delete(queue)
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]
    assert ours["properties"]["delivery_tag"] != celerys["properties"]["delivery_tag"]
    ours, celerys = _without_ids(ours), _without_ids(celerys)
    for part in ("headers", "properties"):  # what differs, named, when something does
        assert {k: (v, celerys[part].get(k)) for k, v in ours[part].items() if celerys[part].get(k) != v} == {}
    assert ours == celerys


def test_other_brokers_and_eager_mode_go_through_celery(monkeypatch):
    sent = []
    monkeypatch.setattr(app, "send_task", lambda *a, **k: sent.append((a, k)))
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    broker.send_task(app, "prewarm.rebuild", ("profile", [1], None), {}, queue="q", argsrepr="a", kwargsrepr="k")
    options = {"queue": "q", "argsrepr": "a", "kwargsrepr": "k"}
    assert sent == [(("prewarm.rebuild", ("profile", [1], None), {}), options)]


def test_a_delivery_record_redis_refused_is_logged_and_the_ack_goes_on(throwaway_redis, caplog):
    """A record Redis refused (here: a wrong type under its key) cannot protect a task that
    already ran; the ack after it must still work, and the refusal is said."""
    import redis

    with Connection(throwaway_redis.url, transport=broker.Transport) as conn:
        channel = conn.default_channel
        check = redis.Redis.from_url(throwaway_redis.url)
        check.set("unacked_index", "not a sorted set")
        _put_one(channel, "q", "t1")
        channel.qos.append(_taken(channel, "q"), "t1")
        with caplog.at_level("WARNING", logger="workers.broker"):
            channel.qos.settle()  # what the ack does first
        assert "broker refused a delivery record for t1" in caplog.text
        check.delete("unacked_index")
        channel.qos.ack("t1")
        assert check.hlen("unacked") == 0
