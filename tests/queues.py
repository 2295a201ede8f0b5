"""Emptying the broker's queues in tests. A purged task never starts, so its waiting ticket
(workers.coalesce) would hold the signal path back for TICKET_STALE_MS: drop those too."""
from core import keys
from core.redis_conn import client
from workers.app import INVALIDATE_QUEUE, WARMUP_QUEUE, app


def purge(*queues: str, unacked: bool = False) -> None:
    """Empty `queues` (both by default); with `unacked`, also the tasks a killed worker had
    taken, which would come back after the visibility timeout."""
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in queues or (INVALIDATE_QUEUE, WARMUP_QUEUE):
            channel.queue_purge(queue)
        if unacked:
            channel.client.delete(channel.unacked_key, channel.unacked_index_key)
    client().delete(keys.inflight_key())
