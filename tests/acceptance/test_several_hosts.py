"""Several hosts on one database: two web servers (granian, 2 processes each), two workers and
a relay. Each web process keeps its own in-process layer, and each stays exact: once a
change is in Redis, no process serves the old bytes."""
import orjson
import pytest
import requests

from core import keys
from tests.processes import WebServer, celery_argv, stop_or_fail
from tests.waiting import wait_for
from workers import relay

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]

PROFILE = "/api/v1/me/profile"


def fetch(server, h):
    # A new connection each time, so every process of the server serves some of them.
    response = requests.get(server.url + PROFILE, headers={**h, "Connection": "close"}, timeout=10)
    assert response.status_code == 200, response.text
    return orjson.loads(response.content)["subscriptions"]


def tracked_readers(redis_client) -> set[str]:
    """Invalidation connections that data connections report to: one per serving web process."""
    return {c["redir"] for c in redis_client.client_list() if "t" in c["flags"] and c.get("redir", "-1") != "-1"}


def test_every_web_process_of_two_servers_stays_exact_with_two_workers(
    warm_world, redis_client, start_proc, service_env, tmp_path
):
    w = warm_world
    for n in (1, 2):
        start_proc(f"worker{n}", celery_argv(pool="solo", concurrency=1))
    start_proc("relay")
    servers = [WebServer(service_env, tmp_path / f"web{n}.log") for n in (1, 2)]
    try:
        h = {"Authorization": w.auth(w.fan)["HTTP_AUTHORIZATION"]}
        for _ in range(200):  # until all four processes hold the profile in their layer
            for server in servers:
                fetch(server, h)
            if len(tracked_readers(redis_client)) >= 4:
                break
        assert len(tracked_readers(redis_client)) == 4, redis_client.client_list()
        plans = {"premium": w.premium, "sports": w.sports}
        current = "premium"
        for _ in range(4):
            for server in servers:
                for _ in range(8):
                    assert fetch(server, h) == [current]
            current = "sports" if current == "premium" else "premium"
            with relay.connect() as conn:  # another service's write: relay -> a worker -> Redis
                conn.execute("UPDATE core_subscription SET plan_id = %s WHERE profile_id = %s",
                             [plans[current].pk, w.fan.pk])
            wait_for(lambda current=current: redis_client.hget(keys.profile_key(w.fan.pk), "subscriptions")
                     == orjson.dumps([current]), 15, message="the rebuild")
    finally:
        stop_or_fail([s.proc for s in servers])
