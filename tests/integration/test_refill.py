"""A cache that lost its data refills itself: beat's refill check starts one full warm-up
when the mark the last one left is gone, and none when Redis has been evicting."""
import pytest
import redis

from core import keys, redis_conn
from ops import refill
from ops.models import JobState, WarmupJob
from tests.rows import bulk_profiles
from tests.sends import patch_send_task

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def quiet_sends(monkeypatch):
    """Chunks are not sent anywhere: these tests are about which jobs start."""
    patch_send_task(monkeypatch, lambda *args, **options: None)


def test_a_lost_mark_starts_one_full_warmup(catalogue, redis_client, quiet_sends):
    bulk_profiles(catalogue, 20)
    job_id = refill.check()  # a new cache: no mark yet
    job = WarmupJob.objects.get(pk=job_id)
    assert job.scope == {"all": True} and job.created_by == refill.CREATED_BY and job.total >= 20
    assert redis_client.get(keys.filled_key()) == str(job_id).encode()
    assert refill.check() is None  # the mark is there

    redis_client.delete(keys.filled_key())  # the cache restarted while that job ran
    assert refill.check() is None, "the running job began before the loss: wait for it to end"
    assert WarmupJob.objects.count() == 1
    WarmupJob.objects.filter(pk=job_id).update(state=JobState.DONE)
    again = refill.check()
    assert again is not None and again != job_id
    assert redis_client.get(keys.filled_key()) == str(again).encode()


def test_no_refill_while_redis_evicts(catalogue, throwaway_redis, settings, quiet_sends):
    bulk_profiles(catalogue, 5)
    server = redis.Redis.from_url(throwaway_redis.url)
    server.config_set("maxmemory", 2_000_000)
    server.config_set("maxmemory-policy", "allkeys-lru")
    value = b"x" * 10_000
    for n in range(400):  # 4 MB into 2 MB
        server.set(f"filler:{n}", value)
    assert int(server.info("stats")["evicted_keys"]) > 0
    settings.REDIS_URL = throwaway_redis.url
    redis_conn.reset()
    try:
        assert refill.check() is None
        assert not WarmupJob.objects.exists()
    finally:
        redis_conn.reset()


def test_the_check_on_a_cluster_asks_every_primary(catalogue, on_cluster, redis_cluster, quiet_sends):
    from ops.refill import evicted_keys

    bulk_profiles(catalogue, 5)
    client = redis_conn.client()
    assert evicted_keys(client) == 0
    job_id = refill.check()
    assert job_id is not None and client.get(keys.filled_key()) == str(job_id).encode()
    assert refill.check() is None

    # Evictions on every node but the one INFO would ask alone: the check must still see them.
    default = client.get_default_node().port
    nodes = [redis.Redis(port=port) for port in redis_cluster.ports if port != default]
    client.delete(keys.filled_key())
    try:
        for node in nodes:
            node.config_set("maxmemory-policy", "allkeys-lru")
            node.config_set("maxmemory", int(node.info("memory")["used_memory"]) + 1_000_000)
        for n in range(600):  # 6 MB over three nodes, two of them with 1 MB of room
            client.set(f"filler:{n}", b"x" * 10_000)
        assert evicted_keys(client) > 0
        WarmupJob.objects.filter(pk=job_id).update(state=JobState.DONE)
        assert refill.check() is None
    finally:
        for node in nodes:
            node.config_set("maxmemory", 0)
            node.config_resetstat()
