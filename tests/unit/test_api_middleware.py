"""api.middleware.ApiFastPath: what the skipped middleware chain guarded, the fast path guards."""
import orjson
import pytest
from django.test import RequestFactory

from api.middleware import ApiFastPath

HOST = "api.example.com"
ROUTES = ("/healthz", "/api/v1/me/profile", "/api/v1/me/playback/news", "/api/v1/nosuch")


@pytest.fixture
def hosts(settings):
    settings.ALLOWED_HOSTS = [HOST]
    return settings


def fast_path():
    return ApiFastPath(lambda request: pytest.fail(f"{request.path} left the fast path"))


def get(mw, path, host=HOST, **extra):
    return mw(RequestFactory().get(path, HTTP_HOST=host, **extra))


@pytest.mark.parametrize("path", ROUTES)
def test_a_host_not_allowed_gets_a_json_400_before_the_view(hosts, path):
    mw = fast_path()
    response = get(mw, path, host="evil.example")
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert orjson.loads(response.content)["error"]["code"] == "bad_host"
    assert response["Content-Length"] == str(len(response.content))


def test_an_allowed_host_is_served_and_remembering_it_lets_no_other_through(hosts):
    mw = fast_path()
    for _ in range(2):
        assert get(mw, "/healthz").status_code == 200
        assert get(mw, "/healthz", host=f"{HOST}:8000").status_code == 200
        assert get(mw, "/healthz", host="evil.example").status_code == 400
        assert get(mw, "/api/v1/me/profile").status_code == 401  # the view ran: no token
    assert mw.known_hosts == {HOST, f"{HOST}:8000"}


def test_remembered_hosts_are_bounded(settings):
    settings.ALLOWED_HOSTS = [".example.com"]
    mw = fast_path()
    for n in range(ApiFastPath.KNOWN_HOSTS * 2):
        assert get(mw, "/healthz", host=f"h{n}.example.com").status_code == 200
    assert len(mw.known_hosts) == ApiFastPath.KNOWN_HOSTS


def test_https_redirect_covers_the_api(hosts):
    hosts.SECURE_SSL_REDIRECT = True
    mw = fast_path()
    plain = get(mw, "/api/v1/me/profile?x=1")
    assert plain.status_code == 301 and plain["Location"] == f"https://{HOST}/api/v1/me/profile?x=1"
    assert get(mw, "/api/v1/me/profile", secure=True).status_code == 401
    assert get(mw, "/healthz").status_code == 200  # SECURE_REDIRECT_EXEMPT: probes come over plain HTTP
    assert get(mw, "/healthz", host="evil.example").status_code == 400  # no redirect to a foreign host


def test_hsts_and_the_security_headers_on_api_answers(hosts):
    hosts.SECURE_HSTS_SECONDS = 3600
    hosts.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    mw = fast_path()
    secure = get(mw, "/healthz", secure=True)
    assert secure["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"
    plain = get(mw, "/healthz")
    assert "Strict-Transport-Security" not in plain  # HSTS over plain HTTP means nothing
    for response in (secure, plain, get(mw, "/api/v1/nosuch")):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_no_hsts_unless_configured(hosts):
    assert "Strict-Transport-Security" not in get(fast_path(), "/healthz", secure=True)
