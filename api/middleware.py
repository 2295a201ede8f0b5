"""Serve API routes ahead of the admin's middleware (sessions, CSRF, auth, messages).

Must be first in MIDDLEWARE. API views authenticate with bearer tokens and set no cookies,
so none of the later middleware has anything to do for them; skipping it saves more time
than the whole view takes on a warm hit. Routes come from api.urls, nothing is duplicated.
What the skipped chain does that matters for a JSON API is done here: the Host check
(ALLOWED_HOSTS), SecurityMiddleware's HTTPS redirect and headers, CommonMiddleware's
Content-Length.
"""
from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.middleware.security import SecurityMiddleware
from django.urls import URLPattern

from .errors import error

# Paths owned by the API: unknown ones get a JSON 404 here without touching the chain.
API_PREFIX = "/api/"
_ONE_PARAM = re.compile(r"^([^<>]*/)<(?:str:)?(\w+)>$")


def _routes():
    from . import urls

    exact: dict[str, object] = {}
    prefixed: list[tuple[str, object, str]] = []
    for pattern in urls.urlpatterns:
        if not isinstance(pattern, URLPattern):
            continue
        route = str(pattern.pattern)
        if "<" not in route:
            exact["/" + route] = pattern.callback
        elif m := _ONE_PARAM.match(route):
            prefixed.append(("/" + m.group(1), pattern.callback, m.group(2)))
    return exact, prefixed


class KnownHosts(set):
    """Hosts that passed Django's ALLOWED_HOSTS check (request.get_host(), ~3.9 us a call
    here), remembered so the next request with one costs a set lookup (~0.07 us). Shared by
    ApiFastPath and the hot lane. Bounded: a wildcard in ALLOWED_HOSTS lets any number of
    names pass; the usual few are fast, the rest are checked each time."""

    LIMIT = 64

    def allows(self, meta) -> bool:
        """Whether request.get_host() passes for a request with these headers (a WSGI environ
        or request.META)."""
        if settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in meta:
            host = meta["HTTP_X_FORWARDED_HOST"]
        else:
            host = meta.get("HTTP_HOST")
        if host in self:
            return True
        probe = HttpRequest()
        # What get_host() reads once the header is chosen; with no host header (HTTP/1.0) it
        # falls back to SERVER_NAME and the port, which are not remembered.
        probe.META = {"HTTP_HOST": host} if host is not None else meta
        try:
            probe.get_host()
        except DisallowedHost:
            return False
        if host is not None and len(self) < self.LIMIT:
            self.add(host)
        return True


class ApiFastPath:
    KNOWN_HOSTS = KnownHosts.LIMIT

    def __init__(self, get_response):
        self.get_response = get_response
        self.exact, self.prefixed = _routes()
        self.security = SecurityMiddleware(get_response)
        self.known_hosts = KnownHosts()
        # SecurityMiddleware's headers are constant but for HSTS (HTTPS only): computed once.
        self.headers = tuple(
            (name.lower(), (name, value)) for name, value in security_headers(self.security, secure=False).items()
        )
        self.sts = security_headers(self.security, secure=True).get("Strict-Transport-Security")

    def __call__(self, request):
        path = request.path_info
        view = self.exact.get(path)
        if view is not None:
            return self._serve(request, view, {})
        for prefix, view, name in self.prefixed:
            if path.startswith(prefix):
                rest = path[len(prefix):]
                if rest and "/" not in rest:
                    return self._serve(request, view, {name: rest})
        if path.startswith(API_PREFIX):
            return self._serve(request, _no_route, {})
        return self.get_response(request)

    def _serve(self, request, view, kwargs):
        refused = self._refuse(request)
        return self._secure(request, refused if refused is not None else view(request, **kwargs))

    def _refuse(self, request):
        """A 400 for a Host not in ALLOWED_HOSTS, or SecurityMiddleware's HTTPS redirect."""
        if not self.known_hosts.allows(request.META):
            return error(400, "bad_host", "this server does not answer to that Host header")
        if self.security.redirect:
            return self.security.process_request(request)
        return None

    def _secure(self, request, response):
        headers = response.headers
        # Written as ResponseHeaders stores them (lower-cased name -> (name, value)): these were
        # checked once at init, and its __setitem__ re-checks each (~0.4 us a header).
        store = headers._store
        for key, item in self.headers:
            if key not in store:
                store[key] = item
        if self.sts and request.is_secure():
            headers.setdefault("Strict-Transport-Security", self.sts)
        # Without Content-Length (CommonMiddleware's) the server falls back to chunked encoding.
        if not response.streaming:
            headers["Content-Length"] = str(len(response.content))
        return response


def _no_route(request):
    return error(404, "not_found", f"no route {request.path_info[:200]!r}")


def security_headers(security: SecurityMiddleware, *, secure: bool) -> dict[str, str]:
    """The headers SecurityMiddleware adds to a response of a plain or an HTTPS request."""
    from django.http import HttpResponse

    probe = security.process_response(_Probe(secure), HttpResponse())
    return {name: value for name, value in probe.headers.items() if name != "Content-Type"}


class _Probe:
    def __init__(self, secure: bool) -> None:
        self.secure = secure

    def is_secure(self) -> bool:
        return self.secure
