"""RabbitMQ as the broker (a real node from the machine's rabbitmq-server): the relay publishes
with confirms, a worker consumes, the queue depths read through AMQP."""
import shutil
import tempfile
from pathlib import Path

import pytest

from core import keys
from tests.rabbitmq import LocalRabbit
from tests.rows import bulk_profiles
from tests.waiting import wait_for
from workers import queues, relay

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def rabbit():
    # Not under pytest's tmp_path: as root the node runs as the rabbitmq user, who cannot enter it.
    directory = Path(tempfile.mkdtemp(prefix="prewarm-rabbitmq-"))
    node = LocalRabbit(directory)
    if not node.available:
        pytest.skip("no rabbitmq-server to start a RabbitMQ node")
    try:
        yield node.start()
    finally:
        node.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_a_raw_sql_change_reaches_the_cache_through_rabbitmq(catalogue, redis_client, start_proc, rabbit, settings):
    start_proc("worker", CELERY_BROKER_URL=rabbit.url)
    start_proc("relay", CELERY_BROKER_URL=rabbit.url)
    ids = bulk_profiles(catalogue, 50)
    with relay.connect() as conn:  # another service's write: only the relay publishes it
        conn.execute("UPDATE core_profile SET region_id = %s WHERE id = ANY(%s)", [catalogue["us"].pk, ids])
    wait_for(lambda: all(redis_client.hget(keys.profile_key(pk), "region") == b"US-EAST" for pk in ids),
             30, message="the rebuilds through RabbitMQ")
    settings.CELERY_BROKER_URL = rabbit.url
    wait_for(lambda: queues.depths() == {"invalidate": 0, "warmup": 0}, 10, message="empty queues")
