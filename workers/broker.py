"""kombu's Redis transport, keeping one Redis client per channel (CELERY_BROKER_TRANSPORT).

kombu builds a new `redis.Redis` object for every publish and for every delivery's and ack's
bookkeeping (`Channel.conn_or_acquire`); the connection comes from the channel's pool, but
building the client (redis-py fills its response-callback table) cost ~0.17 ms here: about
a third of a relay's publish and of the worker main process's work per task. The client is
thread-safe and holds no connection of its own, so one per pool does the same job. When
kombu drops its pools (a lost connection) the next call builds a client on the new pool.

It also retries a delivery's bookkeeping and its restore when the connection dies under
them (QoS).
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import redis
from kombu.transport import redis as kombu_redis

# A delivery's bookkeeping whose connection died is sent again on a new connection, this
# many times in all: clients killed in a row close every connection open at each kill.
ATTEMPTS = 3
RETRY_PAUSE = 0.05  # seconds, times the attempts so far; the first retry goes at once


def _again_on_connection_loss(call):
    for attempt in range(ATTEMPTS):
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError):
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(RETRY_PAUSE * attempt)


class QoS(kombu_redis.QoS):
    """kombu's, with the two steps that stand between a message and its loss retried.

    BRPOP takes a message off the queue; the worker then holds it only as a delivery of its
    channel, recorded in the `unacked` hash, and a channel that closes (a lost connection)
    puts its deliveries back in the queue. Stock kombu tries each of those steps once. When
    one fails (the connection died, maybe after Redis ran the commands), the message stays
    in `unacked` with no worker holding it, and is re-delivered only after the visibility
    timeout (600 s): a task not run for ten minutes. Both steps are idempotent (the restore
    is a WATCH transaction that pushes the message only if its entry is still there)."""

    def append(self, message, delivery_tag):
        _again_on_connection_loss(lambda: super(QoS, self).append(message, delivery_tag))

    def restore_by_tag(self, tag, client=None, leftmost=False):
        _again_on_connection_loss(lambda: super(QoS, self).restore_by_tag(tag, client, leftmost))


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
