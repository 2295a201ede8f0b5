"""API views against real Postgres and Redis: answers, auth, conditional requests, bad input."""
import re
import time

import orjson
import pytest
from django.core import signing
from django.test import Client

from api import tokens
from core import keys, services

pytestmark = pytest.mark.django_db

JSON = "application/json"


@pytest.fixture
def client():
    return Client()


@pytest.fixture
def warm(warm_world):
    return warm_world


def body(response):
    assert response["Content-Type"] == JSON, response.content
    return orjson.loads(response.content)


def error_code(response):
    return body(response)["error"]["code"]


# -- profile -------------------------------------------------------------------------


def test_profile_warm_hit_serves_stored_fields_without_sql(client, warm, django_assert_num_queries):
    first = client.get("/api/v1/me/profile", **warm.auth(warm.fan))
    with django_assert_num_queries(0):
        again = client.get("/api/v1/me/profile", **warm.auth(warm.fan))
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    doc = body(again)
    assert doc["id"] == warm.fan.pk
    assert (doc["region"], doc["isp"], doc["timezone"]) == ("EU-WEST", "fibra", "Europe/London")
    assert doc["subscriptions"] == ["premium"]
    assert doc["channels"] == ["news", "sport1", "movies"]
    assert api_world_redis().hget(keys.profile_key(warm.fan.pk), "class").decode() == doc["class"]
    assert again["Cache-Control"] == "private"
    assert again["ETag"].startswith('"p') and "X-Prewarm-Source" not in again
    assert again["X-Content-Type-Options"] == "nosniff"
    assert again["Content-Length"] == str(len(again.content))


def test_profile_served_from_redis_when_profiles_are_not_kept_locally(
    client, warm, settings, django_assert_num_queries
):
    from api import local_layer

    local = local_layer.get().cache
    settings.PREWARM_API_LOCAL_PROFILES = False
    client.get("/api/v1/me/profile", **warm.auth(warm.fan))
    with django_assert_num_queries(0):
        response = client.get("/api/v1/me/profile", **warm.auth(warm.fan))
    assert response.status_code == 200 and body(response)["id"] == warm.fan.pk
    assert local.get(warm.fan.pk) is None  # Redis served it: nothing kept in process
    # A change in Redis shows at once, with no invalidation needed.
    api_world_redis().hset(keys.profile_key(warm.fan.pk), "isp", "cable")
    assert body(client.get("/api/v1/me/profile", **warm.auth(warm.fan)))["isp"] == "cable"
    settings.PREWARM_API_LOCAL_PROFILES = True
    client.get("/api/v1/me/profile", **warm.auth(warm.fan))
    assert local.get(warm.fan.pk) is not None  # the same read, kept locally when allowed


def test_if_none_match_gives_304_and_a_change_gives_new_etag(client, warm):
    first = client.get("/api/v1/me/profile", **warm.auth(warm.fan))
    etag = first["ETag"]
    for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        again = client.get("/api/v1/me/profile", HTTP_IF_NONE_MATCH=header, **warm.auth(warm.fan))
        assert again.status_code == 304 and again.content == b""
        assert again["ETag"] == etag and again["Cache-Control"] == "private"
    assert client.get("/api/v1/me/profile", HTTP_IF_NONE_MATCH='"other"', **warm.auth(warm.fan)).status_code == 200
    warm.fan.subscriptions.all().delete()
    services.rebuild_profiles([warm.fan.pk])
    changed = client.get("/api/v1/me/profile", HTTP_IF_NONE_MATCH=etag, **warm.auth(warm.fan))
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert body(changed)["subscriptions"] == []


def test_miss_builds_stores_and_serves(client, api_world):
    w = api_world
    r = api_world_redis()
    assert not r.exists(keys.profile_key(w.fan.pk))
    response = client.get("/api/v1/me/profile", **w.auth(w.fan))
    assert response.status_code == 200 and body(response)["id"] == w.fan.pk
    assert r.hget(keys.profile_key(w.fan.pk), "region") == b"EU-WEST"
    assert r.hget(keys.counters_key(), "rebuilds:profile") == b"1"
    # The class entry was built with it, and the EPG builds its fragments on demand.
    epg = client.get("/api/v1/me/epg", **w.auth(w.fan))
    assert epg.status_code == 200
    assert [c["code"] for c in body(epg)["channels"]] == ["news", "sport1", "movies"]


def api_world_redis():
    from core.redis_conn import client as redis_client

    return redis_client()


def test_deleted_profile_is_404(client, warm):
    pk = warm.free.pk
    warm.free.delete()
    services.rebuild_profiles([pk])
    for path in ("/api/v1/me/profile", "/api/v1/me/epg", "/api/v1/me/playback/news"):
        response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {tokens.issue(pk, ttl=60)}")
        assert response.status_code == 404 and error_code(response) == "profile_not_found"


def test_expired_valid_until_is_rebuilt_inline(client, warm):
    r = api_world_redis()
    key = keys.profile_key(warm.fan.pk)
    built_at = int(r.hget(key, "built_at"))
    # An entry whose time ran out, holding what a rebuild from Postgres would not write.
    past = str(int(time.time()) - 5)
    r.hset(key, mapping={"valid_until": past, "isp": "stale-isp", "built_at": built_at - 1000})
    answer = body(client.get("/api/v1/me/profile", **warm.auth(warm.fan)))
    assert answer["isp"] == "fibra"  # rebuilt before answering, not served as stored
    assert answer["built_at"] > built_at - 1000
    assert r.hget(key, "isp") == b"fibra" and int(r.hget(key, "built_at")) == answer["built_at"]
    assert r.hget(key, "valid_until") != past.encode()


# -- playback ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "who, code, status, reason",
    [
        ("fan", "news", 200, None),
        ("fan", "sport1", 200, None),
        ("fan", "movies", 200, None),
        ("fan", "local", 403, "geo_blocked"),
        ("budget", "sport1", 403, "isp_restricted"),
        ("budget", "movies", 403, "isp_restricted"),
        ("free", "sport1", 403, "not_subscribed"),
        ("free", "movies", 403, "not_subscribed"),
        ("free", "news", 200, None),
    ],
)
def test_playback_decisions(client, warm, who, code, status, reason, django_assert_num_queries):
    profile = getattr(warm, who)
    client.get(f"/api/v1/me/playback/{code}", **warm.auth(profile))
    with django_assert_num_queries(0):
        response = client.get(f"/api/v1/me/playback/{code}", **warm.auth(profile))
    assert response.status_code == status
    assert response["Cache-Control"] == "private"
    assert response["Content-Length"] == str(len(response.content))
    doc = body(response)
    if reason is None:
        assert doc == {"channel": code, "allowed": True}
    else:
        assert doc["error"]["code"] == reason and doc["error"]["channel"] == code


@pytest.mark.parametrize(
    "who, states",
    [
        ("fan", {"news": "allowed", "sport1": "allowed", "movies": "allowed", "local": "geo_blocked"}),
        ("budget", {"news": "allowed", "sport1": "isp_restricted", "movies": "isp_restricted",
                    "local": "geo_blocked"}),
        ("free", {"news": "allowed", "sport1": "not_subscribed", "movies": "not_subscribed", "local": "geo_blocked"}),
    ],
)
def test_channels_lists_the_lineup_with_the_state_playback_decides(client, warm, who, states,
                                                                     django_assert_num_queries):
    profile = getattr(warm, who)
    client.get("/api/v1/me/channels", **warm.auth(profile))
    with django_assert_num_queries(0):
        response = client.get("/api/v1/me/channels", **warm.auth(profile))
    assert response.status_code == 200 and response["Cache-Control"] == "private"
    channels = body(response)["channels"]
    assert {c["channel"]: c["state"] for c in channels} == states
    allowed = [c["channel"] for c in channels if c["allowed"]]
    assert allowed == [c for c in ("news", "sport1", "movies") if states[c] == "allowed"]  # guide order
    for c in channels:  # the same answer as playback, channel by channel
        playback = client.get(f"/api/v1/me/playback/{c['channel']}", **warm.auth(profile))
        assert (playback.status_code == 200) == c["allowed"]
        if not c["allowed"]:
            assert body(playback)["error"]["code"] == c["state"] and body(playback)["error"]["message"] == c["message"]
    again = client.get("/api/v1/me/channels", HTTP_IF_NONE_MATCH=response["ETag"], **warm.auth(profile))
    assert again.status_code == 304


def test_playback_unknown_and_malformed_channels(client, warm):
    assert error_code(client.get("/api/v1/me/playback/nosuch", **warm.auth(warm.fan))) == "channel_not_found"
    for bad in ("x" * 33, "-lead", "caf%C3%A9", "a%00b", "%FF%FE", "a%20b"):
        response = client.get(f"/api/v1/me/playback/{bad}", **warm.auth(warm.fan))
        assert response.status_code == 400, bad
        assert error_code(response) == "bad_channel_code"


def test_new_channel_is_known_once_its_class_rebuild_lands_and_never_asks_postgres(
    client, warm, django_assert_num_queries
):
    from core import services
    from core.models import Channel, Licence

    client.get("/api/v1/me/playback/news", **warm.auth(warm.fan))  # class entry now cached
    late = Channel.objects.create(code="late", name="Late", number=9)
    Licence.objects.create(channel=late, region=warm.eu)
    with django_assert_num_queries(0):  # an unknown code costs no query, whatever it is
        response = client.get("/api/v1/me/playback/late", **warm.auth(warm.fan))
    assert response.status_code == 404
    services.rebuild_regions([warm.eu.pk])  # what the worker does for the channel's event
    response = client.get("/api/v1/me/playback/late", **warm.auth(warm.fan))
    assert response.status_code == 200 and body(response) == {"channel": "late", "allowed": True}


# -- EPG -----------------------------------------------------------------------------


def test_epg_today_is_the_stored_fragments_joined(client, warm, django_assert_num_queries):
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    def london_today():
        return datetime.now(UTC).astimezone(ZoneInfo("Europe/London")).date().isoformat()

    for _ in range(2):  # a second try only if London's midnight fell between the requests
        before = london_today()
        first = client.get("/api/v1/me/epg", **warm.auth(warm.fan))
        with django_assert_num_queries(0):
            response = client.get("/api/v1/me/epg", **warm.auth(warm.fan))
        if london_today() == before:
            break
    assert response.content == first.content and response.status_code == 200
    doc = body(response)
    assert doc["date"] == before
    assert doc["timezone"] == "Europe/London"
    assert [c["code"] for c in doc["channels"]] == ["news", "sport1", "movies"]
    assert all(c["programmes"] for c in doc["channels"])
    stored = api_world_redis().hget(keys.epg_fragment_key("Europe/London", doc["date"], warm.news.pk), "data")
    assert stored in response.content  # the fragment's bytes, as stored
    etag = response["ETag"]
    assert client.get("/api/v1/me/epg", HTTP_IF_NONE_MATCH=etag, **warm.auth(warm.fan)).status_code == 304
    dated = client.get(f"/api/v1/me/epg?date={doc['date']}", **warm.auth(warm.fan))
    assert dated.content == response.content and dated["ETag"] == etag


def test_epg_other_kept_days_and_bad_dates(client, warm):
    today = body(client.get("/api/v1/me/epg", **warm.auth(warm.fan)))["date"]
    from datetime import date, timedelta

    d = date.fromisoformat(today)
    for day in (d - timedelta(days=1), d + timedelta(days=1)):
        response = client.get(f"/api/v1/me/epg?date={day.isoformat()}", **warm.auth(warm.fan))
        assert response.status_code == 200 and body(response)["date"] == day.isoformat()
    cases = {
        "2026-13-45": "bad_date", "99999-01-01": "bad_date", "": "bad_date", "today": "bad_date",
        "2026-02-30": "bad_date", "２０２６-01-01": "bad_date",
        (d - timedelta(days=2)).isoformat(): "date_not_kept",
        (d + timedelta(days=30)).isoformat(): "date_not_kept",
    }
    for raw, code in cases.items():
        response = client.get("/api/v1/me/epg", {"date": raw}, **warm.auth(warm.fan))
        assert response.status_code == (404 if code == "date_not_kept" else 400), raw
        assert error_code(response) == code, raw
    twice = client.get(f"/api/v1/me/epg?date={today}&date={today}", **warm.auth(warm.fan))
    assert twice.status_code == 400
    unknown = client.get(f"/api/v1/me/epg?day={today}", **warm.auth(warm.fan))
    assert unknown.status_code == 400 and error_code(unknown) == "unknown_parameter"
    assert client.get("/api/v1/me/profile?x=1", **warm.auth(warm.fan)).status_code == 400


# -- auth ----------------------------------------------------------------------------


def test_auth_failures_are_401_json(client, warm):
    good = warm.token(warm.fan)
    payload, _, signature = good.rpartition(":")
    tampered_sig = payload + ":" + ("A" if signature[0] != "A" else "B") + signature[1:]
    other_pk = good.replace(f"{warm.fan.pk}.", f"{warm.budget.pk}.", 1)
    expired = tokens.issue(warm.fan.pk, ttl=10, now=time.time() - 3600)
    cases = {
        "missing": None,
        "empty": "",
        "no scheme": good,
        "basic": f"Basic {good}",
        "bearer only": "Bearer",
        "garbage": "Bearer not-a-token",
        "tampered signature": f"Bearer {tampered_sig}",
        "tampered profile": f"Bearer {other_pk}",
        "expired": f"Bearer {expired}",
        "odd bytes": "Bearer \x00\xff",
        "huge": "Bearer " + "A" * 100_000,
        "non-ASCII": f"Bearer {good}\u00e9",
        "wrong separator": f"Bearer\t{good}",
        "signed with SECRET_KEY": "Bearer " + signing.Signer(salt=tokens.SALT).sign(good.rpartition(":")[0]),
    }
    for name, header in cases.items():
        extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
        response = client.get("/api/v1/me/profile", **extra)
        assert response.status_code == 401, name
        assert error_code(response) == "unauthorized", name
        assert response["WWW-Authenticate"] == "Bearer"


def test_expiry_is_checked_on_every_request(client, warm, monkeypatch):
    from types import SimpleNamespace

    from api import auth

    issued = time.time()
    short = tokens.issue(warm.fan.pk, ttl=60, now=issued)
    assert client.get("/api/v1/me/profile", HTTP_AUTHORIZATION=f"Bearer {short}").status_code == 200
    assert auth._memo.get(short) is not None  # the verified token is memoised ...
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: issued + 60))
    expired = client.get("/api/v1/me/profile", HTTP_AUTHORIZATION=f"Bearer {short}")  # ... yet its expiry holds
    assert expired.status_code == 401 and "expired" in body(expired)["error"]["message"]
    stale = tokens.issue(warm.fan.pk, ttl=60, now=issued - 61)  # expired before its first use
    assert client.get("/api/v1/me/profile", HTTP_AUTHORIZATION=f"Bearer {stale}").status_code == 401


def test_scopes(client, warm):
    assert client.get("/api/v1/me/profile", **warm.ops_auth).status_code == 403
    viewer = warm.auth(warm.fan)
    assert client.post("/api/v1/ops/warmups", b"{}", content_type=JSON, **viewer).status_code == 403
    assert client.get("/api/v1/ops/warmups/abc", **viewer).status_code == 403


def test_token_command_prints_a_working_token(client, warm):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("api_token", str(warm.fan.pk), "--ttl", "60", stdout=out)
    token = tokens.verify(out.getvalue().strip())
    assert (token.profile_id, token.ops) == (warm.fan.pk, False)


def test_token_command_caps_lifetimes_and_names_only_real_profiles(warm):
    from io import StringIO

    from django.core.management import CommandError, call_command

    def issue(*args):
        out = StringIO()
        call_command("api_token", *map(str, args), stdout=out)
        return tokens.verify(out.getvalue().strip())

    ops = issue(warm.fan.pk, "--ops")  # PREWARM_TOKEN_TTL (a day) is the ops cap too
    assert ops.ops and ops.expires_at <= time.time() + tokens.MAX_TTL_OPS
    assert issue(0, "--ops").profile_id == 0  # an ops token of no one in particular
    for args, message in (
        ((warm.fan.pk, "--ops", "--ttl", tokens.MAX_TTL_OPS + 1), "at most 86400 s for an ops token"),
        ((warm.fan.pk, "--ttl", 10**11), "at most 2592000 s for a viewer token"),
        ((999_999_999, "--ops"), "no profile with id 999999999 (an ops token names an existing profile"),
    ):
        with pytest.raises(CommandError, match=re.escape(message)):
            issue(*args)


# -- ops -----------------------------------------------------------------------------


def test_ops_warmups_submit_follow_list_and_cancel(client, warm, purge_queues):
    from ops import jobs

    ops = warm.ops_auth
    response = client.post("/api/v1/ops/warmups", orjson.dumps({"regions": ["EU-WEST"]}), content_type=JSON, **ops)
    assert response.status_code == 202, response.content
    job = body(response)
    assert job["state"] == "queued" and job["scope"] == {"regions": ["EU-WEST"]} and job["total"] > 0
    assert response["Location"] == f"/api/v1/ops/warmups/{job['id']}"
    # The same scope while it runs: the running job, not a second one.
    again = client.post("/api/v1/ops/warmups", b'{"regions": ["EU-WEST", "EU-WEST"]}', content_type=JSON, **ops)
    assert again.status_code == 202 and body(again)["id"] == job["id"]
    other = body(client.post("/api/v1/ops/warmups", orjson.dumps({"profiles": [warm.fan.pk]}), content_type=JSON,
                             **ops))
    assert other["id"] != job["id"]

    for chunk in jobs.WarmupChunk.objects.filter(job_id=job["id"]).order_by("id"):
        jobs.execute(chunk.pk, send_next=False)  # what the warmup workers do
    done = body(client.get(response["Location"], **ops))
    assert done["state"] == "done" and done["done"] == done["total"] and done["finished_at"]
    assert {"rate", "eta_seconds", "failed", "created_at", "started_at"} <= done.keys()

    listed = body(client.get("/api/v1/ops/warmups?limit=1", **ops))["jobs"]
    assert [j["id"] for j in listed] == [other["id"]]
    assert [j["id"] for j in body(client.get("/api/v1/ops/warmups?state=done", **ops))["jobs"]] == [job["id"]]
    cancelled = client.delete(f"/api/v1/ops/warmups/{other['id']}", **ops)
    assert cancelled.status_code == 200 and body(cancelled)["state"] == "cancelled"
    finished = client.delete(f"/api/v1/ops/warmups/{job['id']}", **ops)
    assert finished.status_code == 409 and error_code(finished) == "job_finished"


def test_ops_warmups_refuse_bad_input_with_a_clear_4xx(client, warm):
    ops = warm.ops_auth
    bad = {
        b"{": "bad_json", b"\xff\xfe": "bad_json", b"[]": "bad_scope", b"{}": "bad_scope",
        b'{"all": false}': "bad_scope", b'{"all": true, "regions": ["X"]}': "bad_scope",
        b'{"profiles": ["1"]}': "bad_scope", b'{"profiles": [true]}': "bad_scope",
        b'{"epg_dates": ["2026-13-45"]}': "bad_scope", b'{"regions": []}': "bad_scope", b'{"what": 1}': "bad_scope",
        b'{"regions": ["NOWHERE"]}': "bad_scope", b'{"epg_dates": ["2001-01-01"]}': "bad_scope",
    }
    for raw, code in bad.items():
        response = client.post("/api/v1/ops/warmups", raw, content_type=JSON, **ops)
        assert response.status_code == 400, raw
        assert error_code(response) == code, raw
    assert client.post("/api/v1/ops/warmups", b"{}", content_type="text/plain", **ops).status_code == 415
    huge = b'{"profiles": [' + b"1," * 600_000 + b"1]}"
    response = client.post("/api/v1/ops/warmups", huge, content_type=JSON, **ops)
    assert response.status_code == 413 and error_code(response) == "body_too_large"
    assert client.get("/api/v1/ops/warmups/999999", **ops).status_code == 404
    for job_id in ("job-1", "1" * 19, "١"):
        assert error_code(client.get(f"/api/v1/ops/warmups/{job_id}", **ops)) == "bad_job_id"
    for query in ("limit=0", "limit=x", "limit=101", "state=nope", "other=1"):
        assert client.get(f"/api/v1/ops/warmups?{query}", **ops).status_code == 400, query


# -- routing, health, metrics --------------------------------------------------------


def test_unknown_routes_and_wrong_methods_are_json(client, warm):
    for path in ("/api/v1/nope", "/api/v1/me/profile/extra", "/api/v1/me/playback/", "/api/" + "x" * 5000):
        response = client.get(path, **warm.auth(warm.fan))
        assert response.status_code == 404 and error_code(response) == "not_found", path
    for method in ("post", "put", "delete", "patch"):
        response = getattr(client, method)("/api/v1/me/profile", **warm.auth(warm.fan))
        assert response.status_code == 405 and response["Allow"] == "GET"
        assert error_code(response) == "method_not_allowed"
    assert client.put("/api/v1/ops/warmups", **warm.ops_auth).status_code == 405


def test_health_readiness_and_metrics(client, warm):
    assert body(client.get("/healthz")) == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.content
    assert body(ready)["checks"] == {"postgres": "ok", "redis": "ok", "broker": "ok"}
    client.get("/api/v1/me/profile", **warm.auth(warm.fan))
    client.get("/api/v1/me/profile", **warm.auth(warm.fan))
    text = client.get("/metrics").content.decode()
    for name in (
        'prewarm_rebuilds_total{family="profile"}',
        'prewarm_api_hits_total{family="profile",layer="local"}',
        "prewarm_invalidation_lag_seconds_bucket",
        "prewarm_outbox_backlog",
        'prewarm_queue_depth{queue="invalidate"}',
        "prewarm_api_tracking_up 1.0",
        "prewarm_warmup_active_jobs 0.0",
    ):
        assert name in text, name
    assert "prewarm_scrape_error{" not in text


def test_metrics_show_the_progress_of_running_warm_ups(client, warm, purge_queues):
    from ops import jobs
    from ops.models import WarmupChunk
    from ops.scope import Scope

    job, _ = jobs.submit(Scope(regions=("EU-WEST",)))
    first = WarmupChunk.objects.filter(job=job).order_by("id").first()
    jobs.execute(first.pk, send_next=False)  # the classes chunk: one region
    job.refresh_from_db()
    text = client.get("/metrics").content.decode()
    assert "prewarm_warmup_active_jobs 1.0" in text
    assert f'prewarm_warmup_entries{{part="total"}} {float(job.total)}' in text
    assert 'prewarm_warmup_entries{part="done"} 1.0' in text


def test_schema_is_served(client):
    import yaml

    response = client.get("/api/schema")
    assert response.status_code == 200
    assert yaml.safe_load(response.content)["openapi"].startswith("3.")


def test_the_index_lists_every_route_and_links_the_schema(client):
    from api import urls

    for path in ("/", "/api/v1/"):
        response = client.get(path)
        assert response.status_code == 200 and response["Content-Type"] == "application/json"
        doc = body(response)
        assert client.get(doc["schema"]).status_code == 200
        listed = {r["path"]: r for r in doc["routes"]}
        served = {"/" + str(p.pattern).replace("<str:", "{").replace(">", "}") for p in urls.ROUTES}
        assert set(listed) == served
        assert listed["/api/v1/me/profile"]["auth"] == "viewer token"
        warmups = {"path": "/api/v1/ops/warmups", "methods": ["GET", "POST"], "auth": "ops token"}
        assert listed["/api/v1/ops/warmups"] == warmups


def test_readyz_names_the_broker_when_it_is_down(client, warm, settings):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{dead}/0"
    ready = client.get("/readyz", **warm.ops_auth)
    doc = body(ready)
    assert ready.status_code == 503 and doc["status"] == "degraded"
    assert doc["checks"]["broker"].startswith("down:") and doc["checks"]["postgres"] == doc["checks"]["redis"] == "ok"
    assert doc["error"] == {"code": "dependency_down", "message": "unreachable: broker"}


def test_readyz_tells_anonymous_callers_only_what_is_down(client, warm, settings):
    """Issue 13: the reasons name hosts, ports and roles; they need an ops token."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{dead}/0"
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert body(ready) == {
        "status": "degraded", "checks": {"postgres": "ok", "redis": "ok", "broker": "down"}, "local_cache": "tracking",
        "error": {"code": "dependency_down", "message": "unreachable: broker"},
    }
    assert str(dead) not in ready.content.decode()
    assert str(dead) in body(client.get("/readyz", **warm.ops_auth))["checks"]["broker"]
    viewer = client.get("/readyz", **warm.auth(warm.fan))
    assert viewer.status_code == 403 and error_code(viewer) == "forbidden"
    assert client.get("/readyz", HTTP_AUTHORIZATION="Bearer junk").status_code == 401


def test_readyz_and_metrics_are_computed_once_a_moment_per_process(client, warm, settings, monkeypatch):
    """Issue 13: each call opened Postgres, Redis and broker connections (~12 ms): ~160
    anonymous calls/s filled the workers."""
    from api import health, metrics

    settings.PREWARM_PROBE_CACHE_SECONDS = 60
    health._checks.clear()
    metrics._body.clear()
    calls = []
    monkeypatch.setitem(health.CHECKS, "postgres", lambda: calls.append("postgres"))
    real_families = metrics.declared_families
    monkeypatch.setattr(metrics, "declared_families", lambda store: calls.append("metrics") or real_families(store))
    try:
        for _ in range(20):
            assert client.get("/readyz").status_code == 200
            assert client.get("/readyz", **warm.ops_auth).status_code == 200
            assert b"prewarm_outbox_backlog" in client.get("/metrics").content
        assert sorted(calls) == ["metrics", "postgres"]
        settings.PREWARM_PROBE_CACHE_SECONDS = 0  # off: every call checks again
        client.get("/readyz")
        client.get("/metrics")
        assert sorted(calls) == ["metrics", "metrics", "postgres", "postgres"]
    finally:
        health._checks.clear()
        metrics._body.clear()
