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


class ApiFastPath:
    # Host headers that passed request.get_host() (~3.9 us a call here): the check then costs
    # one set lookup (~0.07 us), and the whole middleware stays at the ~1.5 us it took before
    # the check (a micro-timing of __call__ around a trivial view, before and after).
    # Bounded: a wildcard in ALLOWED_HOSTS lets any number of names pass; the usual few are fast.
    KNOWN_HOSTS = 64

    def __init__(self, get_response):
        self.get_response = get_response
        self.exact, self.prefixed = _routes()
        self.security = SecurityMiddleware(get_response)
        # X-Forwarded-Host would make the Host header alone the wrong thing to remember.
        self.known_hosts: set[str] | None = None if settings.USE_X_FORWARDED_HOST else set()
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
        host = request.META.get("HTTP_HOST")
        known = self.known_hosts
        if known is None or host not in known:
            try:
                request.get_host()
            except DisallowedHost:
                return error(400, "bad_host", "this server does not answer to that Host header")
            if known is not None and host is not None and len(known) < self.KNOWN_HOSTS:
                known.add(host)
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
