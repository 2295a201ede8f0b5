"""Beat schedules: synced idempotently; time-driven edges found for the next window."""
import pytest
from django_celery_beat.models import PeriodicTask

from core.models import Licence, Profile, Subscription
from schedules import beat
from schedules.tasks import due_edges

pytestmark = pytest.mark.django_db


def test_sync_is_idempotent_and_keeps_edits_to_state():
    beat.sync()
    first = {t.name: t.pk for t in PeriodicTask.objects.filter(name__startswith="prewarm:")}
    assert len(first) == len(beat.SCHEDULES)
    # An operator pauses the sweeper and someone edits a declared field by hand.
    sweeper = PeriodicTask.objects.get(task="prewarm.sweep_dirty")
    PeriodicTask.objects.filter(pk=sweeper.pk).update(enabled=False, queue="elsewhere")
    beat.sync()
    now = {t.name: t for t in PeriodicTask.objects.filter(name__startswith="prewarm:")}
    assert {name: t.pk for name, t in now.items()} == first  # updated in place, never recreated
    assert now[sweeper.name].enabled is False  # the operator's call stands
    assert now[sweeper.name].queue == "invalidate"  # the declaration wins for what the code owns
    assert PeriodicTask.objects.get(task="prewarm.epg_rollover").queue == "warmup"


def test_due_edges_covers_subscriptions_and_licences_in_the_window(catalogue):
    now, hour = catalogue["now"], catalogue["hour"]
    p = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    q = Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"])
    Subscription.objects.create(profile=p, plan=catalogue["basic"], starts_at=now - hour, expires_at=now + hour / 4)
    Subscription.objects.create(profile=q, plan=catalogue["basic"], starts_at=now + hour / 2)
    Subscription.objects.create(profile=q, plan=catalogue["sports"], starts_at=now - hour, expires_at=now + 3 * hour)
    Licence.objects.create(channel=catalogue["local"], region=catalogue["eu"], valid_until=now + hour / 3)
    due = due_edges(now, now + hour)
    assert due == {
        ("profile", now + hour / 4): {p.pk},
        ("profile", now + hour / 2): {q.pk},
        ("region", now + hour / 3): {catalogue["eu"].pk},
    }
