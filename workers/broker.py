"""kombu's Redis transport, keeping one Redis client per channel (CELERY_BROKER_TRANSPORT).

kombu builds a new `redis.Redis` object for every publish and for every delivery's and ack's
bookkeeping (`Channel.conn_or_acquire`); the connection comes from the channel's pool, but
building the client (redis-py fills its response-callback table) cost ~0.17 ms here: about
a third of a relay's publish and of the worker main process's work per task. The client is
thread-safe and holds no connection of its own, so one per pool does the same job. When
kombu drops its pools (a lost connection) the next call builds a client on the new pool.

It also makes a delivery's bookkeeping survive a connection lost under it (QoS.append).
"""
from __future__ import annotations

from contextlib import contextmanager

import redis
from kombu.transport import redis as kombu_redis


class QoS(kombu_redis.QoS):
    def append(self, message, delivery_tag):
        """Record a delivery in the `unacked` hash, then as this channel's (restored when it
        closes). BRPOP has already taken the message off the queue, so if this fails the
        worker holds it nowhere: stock kombu raised, and when Redis had run the commands but
        the connection died before their reply (a killed client, a server `timeout`, a
        failover) the message waited in `unacked` for the visibility timeout (600 s), never
        run. The commands are idempotent: send them once more, on a new connection."""
        try:
            super().append(message, delivery_tag)
        except (redis.ConnectionError, redis.TimeoutError):
            super().append(message, delivery_tag)


class Channel(kombu_redis.Channel):
    QoS = QoS
    _reused_client = None

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        reused = self._reused_client
        if reused is None or reused.connection_pool is not self.pool:
            reused = self._reused_client = self._create_client()
        yield reused


class Transport(kombu_redis.Transport):
    Channel = Channel
