"""The hot lane over real HTTP: granian serving config.wsgi:application (the lane in front of
Django) and config.wsgi:django_application (Django alone) answer the same bytes."""
import http.client
import time

import pytest

from api import guide_days
from tests.processes import WebServer, stop_or_fail

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]

ME = "/api/v1/me/"


@pytest.fixture(scope="module")
def servers(service_env, tmp_path_factory):
    logs = tmp_path_factory.mktemp("granian")
    started = [WebServer(service_env, logs / "hot.log"),
               WebServer(service_env, logs / "django.log", target="config.wsgi:django_application")]
    yield started
    stop_or_fail([s.proc for s in started])


def get(conn, path, headers):
    """(status, reason, headers in order without Date, body) on a kept-alive connection."""
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    return response.status, response.reason, [(k, v) for k, v in response.getheaders() if k.lower() != "date"], body


def test_the_hot_lane_and_django_answer_the_same_bytes_over_http(servers, warm_world):
    w = warm_world
    today = guide_days.window(w.eu.timezone, time.time())
    requests = []
    for profile in (w.fan, w.budget, w.free):
        auth = {"Authorization": f"Bearer {w.token(profile)}"}
        requests += [(ME + route, auth) for route in ("profile", "channels", "epg", "playback/news",
                                                       "playback/sport1", "playback/local", "playback/nope")]
        requests += [(f"{ME}epg?date={day}", auth) for day in sorted(today.kept)]
        requests += [(f"{ME}epg?date=2000-01-01", auth), (ME + "playback/%FF", auth)]
    requests += [(ME + "profile", {}), (ME + "profile", {"Authorization": "Bearer nope"}), ("/healthz", {})]
    # One connection per server: one worker serves it all, so the second round is warm.
    conns = [http.client.HTTPConnection("127.0.0.1", s.port, timeout=10) for s in servers]
    answers = {}
    for _ in range(3):
        for path, headers in requests:
            hot, plain = (get(conn, path, headers) for conn in conns)
            assert hot == plain, f"{path}: hot lane {hot}\n django {plain}"
            answers[path, tuple(headers.items())] = hot
    conditional = 0
    for (path, headers), (status, _, found, _) in answers.items():
        etag = next((v for k, v in found if k.lower() == "etag"), None)
        if status == 200 and etag:
            for conn_headers in ({**dict(headers), "If-None-Match": etag}, {**dict(headers), "If-None-Match": '"x"'}):
                hot, plain = (get(conn, path, conn_headers) for conn in conns)
                assert hot == plain, f"{path} {conn_headers}: hot lane {hot}\n django {plain}"
                conditional += 1
    assert conditional >= 9
    for conn in conns:
        conn.close()
