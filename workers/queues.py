"""What waits between the producers and the workers: Celery queue depths and the outbox
backlog (the freshness page and /metrics read them)."""
from __future__ import annotations

from django.conf import settings

from .app import INVALIDATE_QUEUE, WARMUP_QUEUE

QUEUES = (INVALIDATE_QUEUE, WARMUP_QUEUE)
BROKER_TIMEOUT = 1.0


def depths() -> dict[str, int]:
    """Messages waiting in each queue (not those a worker holds)."""
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        broker = redis.Redis.from_url(url, socket_timeout=BROKER_TIMEOUT, socket_connect_timeout=BROKER_TIMEOUT)
        try:
            pipe = broker.pipeline(transaction=False)
            for q in QUEUES:
                pipe.llen(q)
            return dict(zip(QUEUES, pipe.execute()))
        finally:
            broker.close()
    from kombu import Connection

    found = {}
    with Connection(url, connect_timeout=BROKER_TIMEOUT) as conn:
        channel = conn.channel()
        for q in QUEUES:
            found[q] = channel.queue_declare(queue=q, passive=True).message_count
    return found


def outbox() -> tuple[int, float | None]:
    """Outbox rows waiting for the relay and the age in seconds of the oldest."""
    from django.db import connection

    from .relay import backlog

    connection.ensure_connection()
    return backlog(connection.connection)
