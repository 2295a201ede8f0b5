"""The broker transport (workers.broker): kombu's Redis transport keeping one client per channel."""
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
