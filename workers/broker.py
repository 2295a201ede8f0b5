"""kombu's Redis transport, keeping one Redis client per channel (CELERY_BROKER_TRANSPORT).

kombu builds a new `redis.Redis` object for every publish and for every delivery's and ack's
bookkeeping (`Channel.conn_or_acquire`); the connection comes from the channel's pool, but
building the client (redis-py fills its response-callback table) cost ~0.17 ms here: about
a third of a relay's publish and of the worker main process's work per task. The client is
thread-safe and holds no connection of its own, so one per pool does the same job. When
kombu drops its pools (a lost connection) the next call builds a client on the new pool.

It also retries a delivery's bookkeeping and its restore when the connection dies under
them, and keeps the bookkeeping's round trip off the task's way (QoS). `send_task` pushes a
task onto a Redis broker's queue without Celery's and kombu's per-message Python.
"""
from __future__ import annotations

import base64
import functools
import logging
import threading
import time
import uuid
from contextlib import contextmanager

import orjson
import redis
from celery.utils.nodenames import anon_nodename
from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import QoS as VirtualQoS
from kombu.utils.json import dumps

from core.redis_conn import CONNECT_TIMEOUT, SOCKET_TIMEOUT, round_trip

log = logging.getLogger(__name__)

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
    """kombu's, with the two steps that stand between a message and its loss retried, and the
    first of them sent without waiting for its reply.

    BRPOP takes a message off the queue; the worker then holds it only as a delivery of its
    channel, recorded in the `unacked` hash, and a channel that closes (a lost connection)
    puts its deliveries back in the queue. Stock kombu tries each of those steps once. When
    one fails (the connection died, maybe after Redis ran the commands), the message stays
    in `unacked` with no worker holding it, and is re-delivered only after the visibility
    timeout (600 s): a task not run for ten minutes. Both steps are idempotent (the restore
    is a WATCH transaction that pushes the message only if its entry is still there).

    Stock kombu also waits for the `unacked` record's reply before the task starts: one
    broker round trip on every task's way (0.15-0.4 ms at 200 tasks/s here, of a 3 ms
    commit -> entry lag). Here the record is sent, the task starts, and the replies are read
    by the next bookkeeping call (the ack after the task, the next delivery, a restore), which
    sends the record again on a new connection when they never came. The window in which a
    killed worker loses the message is the stock one: between BRPOP's reply and the record
    reaching Redis (bytes written to the socket are delivered after the process dies).
    """

    _pending = None  # (pool, connection, message, delivery tag): a record sent, its replies unread

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending_lock = threading.Lock()  # the threads pool acks from its threads

    def append(self, message, delivery_tag):
        with self._pending_lock:
            self._settle()
            delivery = message.delivery_info
            record = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
            prefix = getattr(self.channel, "global_keyprefix", "") or ""
            with self.channel.conn_or_acquire() as client:
                pool = client.connection_pool
            conn = None
            try:
                conn = pool.get_connection()
                conn.send_packed_command(conn.pack_commands([
                    ("ZADD", prefix + self.unacked_index_key, time.time(), delivery_tag),
                    ("HSET", prefix + self.unacked_key, delivery_tag, record),
                ]))
            except (redis.ConnectionError, redis.TimeoutError):
                if conn is not None:
                    conn.disconnect()
                    pool.release(conn)
                self._append_now(message, delivery_tag)  # tried again, as kombu's own call
                return
            self._pending = (pool, conn, message, delivery_tag)
            VirtualQoS.append(self, message, delivery_tag)  # the channel holds it from now on

    def _append_now(self, message, delivery_tag):
        _again_on_connection_loss(lambda: super(QoS, self).append(message, delivery_tag))

    def _settle(self):
        """Read the replies of the record sent last; send it again when they never came."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        pool, conn, message, delivery_tag = pending
        errors = []
        try:
            for _ in range(2):
                try:
                    conn.read_response()
                except redis.ResponseError as exc:  # the other reply is still to be read
                    errors.append(exc)
        except (redis.ConnectionError, redis.TimeoutError):
            conn.disconnect()
            pool.release(conn)
            self._append_now(message, delivery_tag)
            return
        pool.release(conn)
        if errors:
            # Redis refused the record (a broker at maxmemory with noeviction, say): the task ran
            # unprotected, as it would have if stock kombu's check had failed after BRPOP. Say
            # so; raising here would fail the ack or the next delivery instead.
            log.warning("broker refused a delivery record for %s: %s", delivery_tag, errors[0])

    def settle(self):
        with self._pending_lock:
            self._settle()

    def ack(self, delivery_tag):
        self.settle()
        super().ack(delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        self.settle()
        super().reject(delivery_tag, requeue=requeue)

    def restore_unacked(self, client=None):
        self.settle()
        super().restore_unacked(client)

    def restore_by_tag(self, tag, client=None, leftmost=False):
        self.settle()
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


# send_task: Celery's publish spent ~0.2 ms of Python per task here (routing, option merging,
# kombu's exchange copies and retry wrapper) before the LPUSH left the relay: on every change's
# way, about 7% of the commit -> entry lag at 200 changes/s. The envelope is the one Celery's
# protocol 2 and kombu's Redis transport build (tests/integration/test_workers_broker compares
# the two); the worker side is Celery's, untouched. Other brokers, kombu options that change
# the key or the envelope, and eager mode go through Celery.
_PLAIN_OPTIONS = {"visibility_timeout", "unacked_restore_interval", "unacked_restore_throttle"}
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


@functools.cache
def _plain_redis(app) -> bool:
    """The broker is a plain Redis through this transport (decided once: a process's broker
    settings do not change, and the five lookups through Django's settings cost ~30 us)."""
    conf = app.conf
    return (
        conf.broker_transport == f"{__name__}:Transport"
        and not conf.broker_use_ssl
        and set(conf.broker_transport_options or {}) <= _PLAIN_OPTIONS
        and str(conf.broker_url).startswith("redis://")
    )


def _direct(app) -> bool:
    return _plain_redis(app) and not app.conf.task_always_eager


@functools.cache
def _broker(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT)


@functools.cache
def _origin() -> str:
    return anon_nodename()


def envelope(app, name: str, args: tuple, kwargs: dict, queue: str, argsrepr: str, kwargsrepr: str) -> bytes:
    """The message kombu's Redis transport would push for `app.send_task(...)` of these."""
    task_id = str(uuid.uuid4())
    headers = {
        "lang": "py", "task": name, "id": task_id, "shadow": None, "eta": None, "expires": None,
        "group": None, "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": task_id,
        "parent_id": None, "argsrepr": argsrepr, "kwargsrepr": kwargsrepr, "origin": _origin(),
        "ignore_result": None, "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }
    properties = {
        "correlation_id": task_id, "reply_to": app.thread_oid, "argsrepr": argsrepr, "kwargsrepr": kwargsrepr,
        "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
        "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
    }
    body = base64.b64encode(orjson.dumps([args, kwargs, _EMBED])).decode()
    return orjson.dumps({"body": body, "content-encoding": "utf-8", "content-type": "application/json",
                         "headers": headers, "properties": properties})


def send_task(app, name: str, args: tuple, kwargs: dict, *, queue: str, argsrepr: str, kwargsrepr: str) -> None:
    """`app.send_task(name, args, kwargs, queue=..., argsrepr=..., kwargsrepr=...)`, as one LPUSH
    on a Redis broker. Raises when the broker refuses (a lost connection is tried once more:
    a task sent twice is one more rebuild, harmless)."""
    if not _direct(app):
        app.send_task(name, args, kwargs, queue=queue, argsrepr=argsrepr, kwargsrepr=kwargsrepr)
        return
    message = envelope(app, name, args, kwargs, queue, argsrepr, kwargsrepr)
    round_trip([("LPUSH", queue, message)], on=_broker(str(app.conf.broker_url)))
