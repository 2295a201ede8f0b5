"""A real `celery beat` (the DatabaseScheduler, schedules as `migrate` made them, intervals
shortened) and a real worker run the time-driven rebuilds, the sweeper and the EPG rollover."""
import zoneinfo
from datetime import timedelta

import pytest
from django.utils import timezone

from core import keys
from core.models import Profile, Subscription
from tests.beat import BEAT, run_every_second
from tests.rows import quiet_isp_change
from tests.waiting import wait_for
from workers import coalesce

pytestmark = pytest.mark.django_db(transaction=True)

TIME_DRIVEN = ("prewarm.schedule_due", "prewarm.sweep_dirty", "prewarm.epg_rollover")


@pytest.fixture
def every_second():
    run_every_second(TIME_DRIVEN)


def test_beat_runs_the_time_driven_rebuilds_the_sweeper_and_the_rollover(
    catalogue, redis_client, purge_queues, start_proc, every_second, settings
):
    c = catalogue
    # No relay runs here: the signal path must not leave its changes to one while a task waits.
    settings.PREWARM_WAITING_TASKS = 1000
    start_proc("worker")
    p = Profile.objects.create(region=c["eu"], isp=c["fibra"])
    s = Subscription.objects.create(profile=p, plan=c["premium"], starts_at=c["now"] - c["hour"],
                                    expires_at=timezone.now() + c["hour"])
    q = Profile.objects.create(region=c["eu"], isp=c["fibra"])
    wait_for(lambda: redis_client.hget(keys.profile_key(p.pk), "subscriptions") == b'["premium"]', message="cached")
    wait_for(lambda: redis_client.hget(keys.profile_key(q.pk), "isp") == b"fibra", message="cached")

    # 1. A subscription that ends in a few seconds; no relay runs, so only beat can flip it.
    expires = timezone.now() + timedelta(seconds=4)
    Subscription.objects.filter(pk=s.pk).update(expires_at=expires)
    # 2. A producer that died after claiming q: its marker is old, its change unannounced.
    quiet_isp_change(q.pk, c["cable"].pk)
    redis_client.hset(keys.dirty_key("profile"), q.pk, f"csdead:{coalesce.now_ms() - 10 * coalesce.CLAIM_STALE_MS}")
    # 3. A missing EPG fragment of today.
    day = timezone.now().astimezone(zoneinfo.ZoneInfo("Europe/London")).date().isoformat()
    fragment = keys.epg_fragment_key("Europe/London", day, c["news"].pk)
    redis_client.delete(fragment)

    beat_proc = start_proc("beat", BEAT, ready="beat: Starting")
    wait_for(lambda: redis_client.hget(keys.profile_key(q.pk), "isp") == b"cable", timeout=30,
             message="the sweeper re-sent the dead producer's claim")
    wait_for(lambda: redis_client.exists(fragment), timeout=30, message="the rollover rebuilt the fragment")
    wait_for(lambda: redis_client.hget(keys.profile_key(p.pk), "subscriptions") == b"[]", timeout=30,
             message="the expiry flipped the entry")
    assert int(redis_client.hget(keys.profile_key(p.pk), "built_at")) / 1000 >= expires.timestamp()
    log = beat_proc.output()
    for task in TIME_DRIVEN:
        assert "Sending due task" in log and task in log, task


def test_beat_runs_the_rolling_verification_which_repairs_and_records_its_cycle(
    catalogue, redis_client, purge_queues, start_proc
):
    c = catalogue
    run_every_second(("prewarm.verify_slice",))
    start_proc("worker", PREWARM_VERIFY_GRACE_SECONDS="0.2", PREWARM_VERIFY_CYCLE_HOURS="0.01")
    p = Profile.objects.create(region=c["eu"], isp=c["fibra"])
    wait_for(lambda: redis_client.hget(keys.profile_key(p.pk), "isp") == b"fibra", message="cached")
    redis_client.hset(keys.profile_key(p.pk), "isp", "cheapnet")  # drift no event announces
    start_proc("beat", BEAT, ready="beat: Starting")
    wait_for(lambda: redis_client.hget(keys.profile_key(p.pk), "isp") == b"fibra", timeout=30,
             message="the rolling verification repaired the entry")
    wait_for(lambda: redis_client.hget(keys.gauges_key(), "verify_last_cycle_timestamp_seconds"), timeout=30,
             message="a full cycle was recorded")
    assert int(redis_client.hget(keys.counters_key(), "verify_drift:profile:stale")) >= 1
