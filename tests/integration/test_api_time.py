"""Time-driven correctness on read, with no worker and no beat running: the read path alone
notices that an entry's moment has passed, and a rebuilt guide never answers a stale 304."""
import time
from datetime import timedelta

import orjson
import pytest
from django.test import Client
from django.utils import timezone

from core import services
from core.models import Licence, Programme
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db

WINDOW = 3.0  # seconds until the licence ends: room for the first request on a busy machine


def playback(client, w, channel):
    return client.get(f"/api/v1/me/playback/{channel}", **w.auth(w.fan))


def test_a_licence_window_closing_flips_playback_to_403_on_read(warm_world):
    w, client = warm_world, Client()
    end = timezone.now() + timedelta(seconds=WINDOW)
    Licence.objects.filter(channel=w.sport1, region=w.eu).update(valid_until=end)
    services.rebuild_regions([w.eu.pk])  # what the worker does for the licence edit itself
    before = playback(client, w, "sport1")
    if time.time() < end.timestamp():  # the moment has not passed yet: still allowed
        assert before.status_code == 200
    wait_for(lambda: time.time() > end.timestamp() + 0.05, timeout=WINDOW + 5, message="the licence's end")
    after = playback(client, w, "sport1")  # nothing rebuilt it since: the read must notice
    assert after.status_code == 403
    assert orjson.loads(after.content)["error"]["code"] == "geo_blocked"


def test_a_programme_change_gives_the_guide_a_new_etag(warm_world):
    w, client = warm_world, Client()
    first = client.get("/api/v1/me/epg", **w.auth(w.fan))
    etag = first["ETag"]
    assert client.get("/api/v1/me/epg", HTTP_IF_NONE_MATCH=etag, **w.auth(w.fan)).status_code == 304
    # The one on air: today's guide holds it at any hour (the last one starts 2 h from now,
    # which after 22:00 in the viewer's zone is tomorrow's guide).
    show = Programme.objects.filter(channel=w.news, starts_at__lte=timezone.now()).order_by("starts_at").last()
    Programme.objects.filter(pk=show.pk).update(title="Breaking: a new title")
    services.rebuild_epg([w.news.pk])  # what the worker does for the programme's event
    changed = client.get("/api/v1/me/epg", HTTP_IF_NONE_MATCH=etag, **w.auth(w.fan))
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert b"Breaking: a new title" in changed.content
