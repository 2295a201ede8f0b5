"""Event warm-ups over the API and in the admin: each event keeps one clocked beat schedule
at its warm-up time (moved and removed with it); firing it submits a warm-up job."""
from datetime import timedelta

import orjson
import pytest
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, PeriodicTask

from api import tokens
from ops import events
from ops.models import WarmupEvent

pytestmark = pytest.mark.django_db(transaction=True)

JSON = "application/json"
EVENTS = "/api/v1/ops/events"
SOON = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def ops(api_world):
    return {"HTTP_AUTHORIZATION": f"Bearer {tokens.issue(1, ops=True, ttl=600)}"}


def post(ops, doc):
    return Client().post(EVENTS, orjson.dumps(doc), content_type=JSON, **ops)


def schedule(event_id):
    return PeriodicTask.objects.filter(name=events.schedule_name(event_id)).select_related("clocked").first()


def test_an_event_keeps_one_clocked_schedule_at_its_warm_up_time(ops, purge_queues):
    starts = timezone.now() + timedelta(hours=3)
    response = post(ops, {"name": "Cup final", "starts_at": starts.isoformat(), "lead_seconds": 3600,
                          "scope": {"regions": ["EU-WEST"]}})
    assert response.status_code == 201, response.content
    doc = orjson.loads(response.content)
    assert response["Location"] == f"{EVENTS}/{doc['id']}"
    assert doc["warmup_at"] == (starts - timedelta(hours=1)).isoformat() and doc["jobs"] == []
    task = schedule(doc["id"])
    assert task.task == events.TASK and task.one_off and task.enabled and orjson.loads(task.args) == [doc["id"]]
    assert task.clocked.clocked_time == starts - timedelta(hours=1)

    moved = Client().patch(f"{EVENTS}/{doc['id']}", b'{"lead_seconds": 600}', content_type=JSON, **ops)
    assert moved.status_code == 200 and orjson.loads(moved.content)["lead_seconds"] == 600
    assert schedule(doc["id"]).clocked.clocked_time == starts - timedelta(minutes=10)
    assert ClockedSchedule.objects.count() == 1  # moved, not duplicated
    listed = orjson.loads(Client().get(EVENTS, **ops).content)["events"]
    assert [e["id"] for e in listed] == [doc["id"]]

    job = events.fire(doc["id"])  # what beat's schedule runs at the warm-up time
    assert job is not None and events.fire(doc["id"]).pk == job.pk  # the running job, not a second
    assert orjson.loads(Client().get(f"{EVENTS}/{doc['id']}", **ops).content)["jobs"] == [job.pk]

    assert Client().delete(f"{EVENTS}/{doc['id']}", **ops).status_code == 204
    assert schedule(doc["id"]) is None and not ClockedSchedule.objects.exists()
    assert Client().get(f"{EVENTS}/{doc['id']}", **ops).status_code == 404
    job.refresh_from_db()
    assert job.event_id is None  # the job it started stays


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"name": "x", "starts_at": "2020-01-01T00:00:00Z", "scope": {"all": True}}, "has passed"),
        ({"name": "x", "starts_at": "soon", "scope": {"all": True}}, "ISO 8601"),
        ({"name": "x", "starts_at": "2030-01-01T00:00:00", "scope": {"all": True}}, "UTC offset"),
        ({"name": "x", "starts_at": "2026-13-01T00:00:00Z", "scope": {"all": True}}, "ISO 8601"),
        ({"name": "x", "starts_at": "8383-11-08T04:41:14-17:13", "scope": {"all": True}}, "within 366 days"),
        # Moments Python cannot move to UTC, or whose warm-up time would fall before year 1.
        ({"name": "x", "starts_at": "0001-01-01T00:00:00+01:00", "scope": {"all": True}}, "within 366 days"),
        ({"name": "x", "starts_at": "9999-12-31T23:00:00-05:00", "scope": {"all": True}}, "within 366 days"),
        ({"name": "x", "starts_at": "0001-01-01T00:10:00Z", "scope": {"all": True}}, "has passed"),
        ({"name": "", "starts_at": SOON, "scope": {"all": True}}, "name must be"),
        ({"name": "cup\x00final", "starts_at": SOON, "scope": {"all": True}}, "control characters"),
        ({"name": "x", "starts_at": SOON, "scope": {}}, "scope: give all"),
        ({"name": "x", "starts_at": SOON, "scope": {"all": True}, "lead_seconds": -1},
         "lead_seconds must be"),
        ({"name": "x", "scope": {"all": True}}, "missing fields: starts_at"),
        ({"name": "x", "starts_at": SOON, "scope": {"all": True}, "when": 1}, "unknown fields"),
    ],
)
def test_a_bad_event_is_a_400_that_says_why(ops, doc, message):
    response = post(ops, doc)
    assert response.status_code == 400 and message in orjson.loads(response.content)["error"]["message"]
    assert not WarmupEvent.objects.exists() and not PeriodicTask.objects.filter(task=events.TASK).exists()


def test_moving_an_event_into_the_past_is_refused_and_changes_nothing(ops):
    starts = timezone.now() + timedelta(hours=1)
    doc = orjson.loads(post(ops, {"name": "Derby", "starts_at": starts.isoformat(), "scope": {"all": True}}).content)
    response = Client().patch(f"{EVENTS}/{doc['id']}", b'{"lead_seconds": 7200}', content_type=JSON, **ops)
    assert response.status_code == 400
    assert WarmupEvent.objects.get().lead_seconds == doc["lead_seconds"]
    assert schedule(doc["id"]).clocked.clocked_time == starts - timedelta(seconds=doc["lead_seconds"])
    viewer = Client().get(EVENTS, HTTP_AUTHORIZATION=f"Bearer {tokens.issue(1, ttl=60)}")
    assert viewer.status_code == 403


def test_the_admin_schedules_and_unschedules_events(api_world, admin_client):
    starts = timezone.now() + timedelta(hours=2)
    form = {"name": "Final", "starts_at_0": starts.strftime("%Y-%m-%d"), "starts_at_1": starts.strftime("%H:%M:%S"),
            "lead_seconds": "1800", "scope": '{"all": true}'}
    added = admin_client.post("/admin/ops/warmupevent/add/", form)
    assert added.status_code == 302, added.content.decode()[:2000]
    event = WarmupEvent.objects.get()
    assert schedule(event.pk).clocked.clocked_time == event.warmup_at
    past = {**form, "starts_at_0": "2020-01-01"}
    refused = admin_client.post("/admin/ops/warmupevent/add/", past)
    assert refused.status_code == 200 and b"has passed" in refused.content
    admin_client.post(f"/admin/ops/warmupevent/{event.pk}/delete/", {"post": "yes"})
    assert not WarmupEvent.objects.exists() and schedule(event.pk) is None
