"""A subscription that ends between two beat ticks ends in the cache on time, with no tick and
no write: the rebuild its creation caused queued the edge (real worker, real broker)."""
from datetime import timedelta

import pytest

from core import keys, selectors
from core.models import Profile, Subscription
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_edge_inside_the_scanned_window_flips_the_entry_without_a_tick(
    catalogue, redis_client, purge_queues, start_proc
):
    start_proc("worker")
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    ends = selectors.db_now() + timedelta(seconds=3)
    Subscription.objects.create(
        profile=p, plan=catalogue["sports"], starts_at=ends - timedelta(days=1), expires_at=ends
    )
    key = keys.profile_key(p.pk)
    wait_for(lambda: redis_client.hget(key, "subscriptions") == b'["sports"]', message="the new plan written")
    wait_for(lambda: redis_client.hget(key, "subscriptions") == b"[]", timeout=30, message="the plan's end written")
