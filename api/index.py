"""The API's front page: every route with its methods and the token it needs, and where the schema is."""
from __future__ import annotations

import re

import orjson
from django.http import HttpResponse

from .http import JSON, endpoint

_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")
AUTH_NAMES = {None: "none", "viewer": "viewer token", "ops": "ops token"}


def body(patterns) -> bytes:
    """JSON bytes listing the routes of `patterns` (Django URLPatterns built with api.http.endpoint)."""
    routes = [
        {
            "path": "/" + _PARAM.sub(r"{\1}", str(p.pattern)),
            "methods": sorted(p.callback.allowed_methods),
            "auth": AUTH_NAMES[p.callback.auth],
        }
        for p in patterns
    ]
    doc = {
        "name": "Prewarm API",
        "schema": "/api/schema",
        "admin": "/admin/",
        "auth": "Authorization: Bearer <token> (manage.py api_token PROFILE_ID [--ops])",
        "routes": routes,
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def view_for(patterns):
    """A view answering the index of `patterns`, built once."""
    content = body(patterns)

    @endpoint("GET")
    def index(request):
        return HttpResponse(content, content_type=JSON)

    return index
