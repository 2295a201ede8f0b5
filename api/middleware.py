"""Serve API routes ahead of the admin's middleware (sessions, CSRF, auth, messages).

Must be first in MIDDLEWARE. API views authenticate with bearer tokens and set no cookies,
so none of the later middleware has anything to do for them; skipping it saves more time
than the whole view takes on a warm hit. Routes come from api.urls, nothing is duplicated.
"""
from __future__ import annotations

import re

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
    def __init__(self, get_response):
        self.get_response = get_response
        self.exact, self.prefixed = _routes()

    def __call__(self, request):
        path = request.path_info
        view = self.exact.get(path)
        if view is not None:
            return _secure(view(request))
        for prefix, view, name in self.prefixed:
            if path.startswith(prefix):
                rest = path[len(prefix):]
                if rest and "/" not in rest:
                    return _secure(view(request, **{name: rest}))
        if path.startswith(API_PREFIX):
            return _secure(error(404, "not_found", f"no route {path[:200]!r}"))
        return self.get_response(request)


def _secure(response):
    # What the skipped middleware would have added that matters for a JSON API: nosniff
    # (SecurityMiddleware) and Content-Length (CommonMiddleware; without it the server
    # falls back to chunked encoding).
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    if not response.streaming:
        headers["Content-Length"] = str(len(response.content))
    return response
