"""The hot lane: warm viewer reads answered in front of Django, everything else handed to it.

A GET of /api/v1/me/{profile, channels, epg, playback/<code>} with a token this process has
verified before, a Host Django accepted, and every entry the view would read already in the
in-process cache gets the status, headers and bytes the view would give, without a request
object, routing, middleware or a response object: ~3 us of Python where Django takes 30-40
(measured in process, one warm viewer).
Anything else, and any doubt, goes to Django untouched: a miss, a token not seen yet, an
unusual header or query spelling, a request the HTTPS redirect would bounce, other methods
and routes. tests/integration/test_api_hot_lane.py compares both paths byte for byte.

Exactness is the views': the same tracker sync before the same cache lookups (api.tracking),
so an invalidation that has reached this host is never answered past. The hit counters are
the views' too. No database is touched, so skipping Django's request signals (which close
stale database connections) loses nothing.
"""
from __future__ import annotations

import logging
import time

from django.conf import settings
from django.middleware.security import SecurityMiddleware

from core import validation

from . import auth, guide_days, local_layer
from .entries import profile_body, profile_etag
from .http import JSON, etag_matches
from .metrics import HITS
from .middleware import KnownHosts, security_headers
from .views import CACHE_CONTROL

log = logging.getLogger("prewarm.api")

PREFIX = "/api/v1/me/"
PLAYBACK = "playback/"
DATE = "date="
STATUS = {200: "200 OK", 304: "304 Not Modified", 403: "403 Forbidden"}
CACHE = ("Cache-Control", CACHE_CONTROL)
CONTENT_TYPE = ("Content-Type", JSON)


class HotLane:
    """WSGI app: warm viewer reads here, the rest to `app` (Django's WSGI handler)."""

    def __init__(self, app) -> None:
        self.app = app
        security = SecurityMiddleware(lambda request: None)
        self.redirect = security.redirect
        self.proxy_ssl = settings.SECURE_PROXY_SSL_HEADER
        plain = tuple(security_headers(security, secure=False).items())
        sts = security_headers(security, secure=True).get("Strict-Transport-Security")
        # What ApiFastPath adds after the view's headers: [plain request, HTTPS request].
        self.security = (plain, (*plain, ("Strict-Transport-Security", sts)) if sts else plain)
        self.hosts = KnownHosts()  # Hosts Django's check accepted, as ApiFastPath remembers them

    def __call__(self, environ, start_response):
        try:
            answer = self.answer(environ)
        except Exception:  # a bug here must cost speed, not the answer
            log.exception("hot lane failed; Django answers instead")
            answer = None
        if answer is None:
            return self.app(environ, start_response)
        status, headers, body = answer
        start_response(status, headers)
        # granian sends a one-item list as a fixed body, and for a 304 then drops the
        # Content-Length: 0 Django's answer has; any other iterable (Django's response, a
        # tuple) keeps the headers as given. The list is its faster path for the rest.
        return [body] if body else (body,)

    def answer(self, environ) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """(status, headers, body) of a warm viewer read, or None: Django answers."""
        path = environ.get("PATH_INFO", "")
        if not path.startswith(PREFIX) or environ.get("REQUEST_METHOD") != "GET":
            return None
        route = path[len(PREFIX):]
        query = environ.get("QUERY_STRING", "")
        if query and (route != "epg" or not query.startswith(DATE)):
            return None
        secure = self._secure(environ)
        if (self.redirect and not secure) or not self.hosts.allows(environ):
            return None
        now = time.time()
        token = auth.remembered(environ.get("HTTP_AUTHORIZATION"))
        if token is None or token.ops or token.expires_at <= now:
            return None
        tracker = local_layer.current()
        if tracker is None:  # Django's first request starts it
            return None
        tracker.sync()
        cache = tracker.cache
        profile = cache.get(token.profile_id)
        if profile is None or profile.deleted or profile.valid_until <= now:
            return None
        cls = cache.get(profile.class_key)
        if cls is None or cls.valid_until <= now:
            return None

        if route.startswith(PLAYBACK):
            code = route[len(PLAYBACK):]
            decision = cls.decisions.get(code) if validation.is_code(code) else None
            if decision is None:  # unknown channel or bad code: the view's 404 or 400
                return None
            status, body = decision
            etag = None
        elif route == "profile":
            status, body, etag = 200, None, profile_etag(profile, cls)
        elif route == "channels":
            status, body, etag = 200, cls.channels_body, cls.etag
        elif route == "epg":
            days = guide_days.window(cls.tz or profile.tz, now)
            day = query[len(DATE):] if query else days.today
            if day not in days.kept:  # past the window, malformed or oddly spelled
                return None
            entry = cache.get(local_layer.epg_key(profile.class_id, day))
            if entry is None or entry.valid_until <= now:
                return None
            HITS["epg", "local"] += 1
            status, body, etag = 200, entry.body, entry.etag
        else:
            return None

        HITS["profile", "local"] += 1
        HITS["class", "local"] += 1
        if etag is None:
            head = [CACHE, CONTENT_TYPE]
        elif etag_matches(environ.get("HTTP_IF_NONE_MATCH"), etag):
            status, body, head = 304, b"", [CACHE, ("ETag", etag)]
        else:
            head = [CACHE, ("ETag", etag), CONTENT_TYPE]
            if body is None:
                body = profile_body(profile, cls)
        return STATUS[status], [*head, *self.security[secure], ("Content-Length", str(len(body)))], body

    def _secure(self, environ) -> bool:
        """request.is_secure(), from the environ (HttpRequest.scheme)."""
        if self.proxy_ssl:
            header, secure_value = self.proxy_ssl
            value = environ.get(header)
            if value is not None:
                return value.split(",", 1)[0].strip() == secure_value
        return environ.get("wsgi.url_scheme") == "https"
