"""A real worker accepts JSON tasks only: a pickled message is refused and never runs."""
import pickle

import orjson
import pytest
from kombu import Connection, Exchange, Producer

from core import keys
from tests.rows import bulk_profiles
from workers.app import INVALIDATE_QUEUE, app
from workers.events import REBUILD_TASK

pytestmark = pytest.mark.django_db(transaction=True)


def publish_raw(body: bytes, content_type: str, encoding: str, task_id: str):
    """A task message as Celery's protocol 2 lays it out, with the serializer we choose."""
    with Connection(app.conf.broker_url) as conn:
        Producer(conn).publish(
            body, exchange=Exchange(INVALIDATE_QUEUE, type="direct"), routing_key=INVALIDATE_QUEUE,
            content_type=content_type, content_encoding=encoding,
            headers={"lang": "py", "task": REBUILD_TASK, "id": task_id, "root_id": task_id, "parent_id": None},
        )


def test_a_pickled_task_is_refused_and_a_json_one_runs(catalogue, redis_client, purge_queues, start_proc):
    worker = start_proc("worker")
    [victim] = bulk_profiles(catalogue, 1)  # only our messages rebuild it
    args = (("profile", [victim], None), {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None})
    publish_raw(pickle.dumps(args), "application/x-python-serialize", "binary", "pickled-1")
    worker.wait_for_output("untrusted content of type pickle")
    assert not redis_client.exists(keys.profile_key(victim))
    publish_raw(orjson.dumps(args), "application/json", "utf-8", "json-1")
    worker.wait_for_output("json-1] succeeded")
    assert "pickled-1] succeeded" not in worker.output() and "pickled-1] received" not in worker.output()
    assert redis_client.hget(keys.profile_key(victim), "region") == b"EU-WEST"  # built by the JSON task alone
