"""View plumbing: allowed methods, authentication, and the small JSON answers."""
from __future__ import annotations

from functools import wraps

from django.http import HttpResponse

from .auth import authenticate
from .errors import error

JSON = "application/json"
PUBLIC = None
VIEWER = "viewer"
OPS = "ops"


def endpoint(*methods: str, auth: str | None = PUBLIC, query: tuple[str, ...] = ()):
    """Answer 405 JSON for other methods and 400 for undocumented query parameters; with
    `auth`, pass the verified token to the view."""
    allowed = frozenset(methods)
    allow_header = ", ".join(sorted(allowed))
    known = frozenset(query)

    def decorate(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method not in allowed:
                return error(405, "method_not_allowed", f"use {allow_header}", Allow=allow_header)
            if request.META.get("QUERY_STRING"):
                unknown = set(request.GET) - known
                if unknown:
                    names = ", ".join(sorted(repr(n[:40]) for n in unknown)[:5])
                    return error(400, "unknown_parameter", f"unknown query parameters: {names}")
            if auth is None:
                return view(request, *args, **kwargs)
            token = authenticate(request, ops=auth == OPS)
            if isinstance(token, HttpResponse):
                return token
            return view(request, token, *args, **kwargs)

        wrapped.allowed_methods = allowed
        wrapped.auth = auth
        wrapped.query = known
        return wrapped

    return decorate


def etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match against a strong ETag (weak comparison, as RFC 9110 asks for GET)."""
    if not header:
        return False
    if header == etag or header == "*":
        return True
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False
