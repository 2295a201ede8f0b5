"""Viewer routes: cached bytes out, no SQL and no JSON serialization on a warm hit."""
from __future__ import annotations

import logging
import time

from django.http import HttpResponse, HttpResponseNotModified

from core import validation

from . import cache_reads, guide_days
from .entries import profile_body, profile_etag
from .errors import error
from .http import JSON, VIEWER, endpoint, etag_matches

CACHE_CONTROL = "private"
SOURCE_HEADER = "X-Prewarm-Source"  # "postgres" when Redis could not serve (degraded)

log = logging.getLogger("prewarm.api")


def _unavailable(exc: Exception) -> HttpResponse:
    # The exception names hosts, ports and roles: the log gets it, the viewer does not.
    log.warning("answering 503: %s", exc)
    return error(503, "unavailable", "the service is temporarily unavailable; try again shortly", Retry_After="1")


def _viewer(token):
    """(viewer, None) or (None, error response)."""
    try:
        view = cache_reads.viewer(token.profile_id)
    except cache_reads.Unavailable as exc:
        return None, _unavailable(exc)
    if view.profile.deleted:
        return None, error(404, "profile_not_found", "this token's profile does not exist")
    if view.cls is None:
        return None, error(503, "unavailable", "the profile's region is unknown; try again shortly")
    return view, None


def _headers(etag: str | None, degraded_view: bool) -> dict:
    headers = {"Cache-Control": CACHE_CONTROL}
    if etag is not None:
        headers["ETag"] = etag
    if degraded_view:
        headers[SOURCE_HEADER] = "postgres"
    return headers


@endpoint("GET", auth=VIEWER)
def me_profile(request, token):
    view, failed = _viewer(token)
    if failed is not None:
        return failed
    etag = profile_etag(view.profile, view.cls)
    headers = _headers(etag, view.degraded)
    if etag_matches(request.META.get("HTTP_IF_NONE_MATCH"), etag):
        return HttpResponseNotModified(headers=headers)
    return HttpResponse(profile_body(view.profile, view.cls), content_type=JSON, headers=headers)


@endpoint("GET", auth=VIEWER)
def me_playback(request, token, channel_code):
    if not validation.is_code(channel_code):
        return error(400, "bad_channel_code", f"a channel code is {validation.CODE_RULE}")
    view, failed = _viewer(token)
    if failed is not None:
        return failed
    answer = view.cls.decisions.get(channel_code)
    if answer is None:
        # The class entry lists every channel that existed when it was built, and a new or
        # renamed channel rebuilds every class (a trigger touches all regions), so an unknown
        # code is unknown; asking Postgres here would let junk codes hammer the database.
        return error(404, "channel_not_found", f"no channel {channel_code!r}")
    status, body = answer
    response = HttpResponse(body, status=status, content_type=JSON, headers=_headers(None, view.degraded))
    if status != 200:
        # A refusal is an answer, not an error: Django would log every one at peak.
        response._has_been_logged = True
    return response


@endpoint("GET", auth=VIEWER)
def me_channels(request, token):
    """Why a channel is missing from the guide: every channel with its state, from the class
    entry (bytes serialized when the entry was read, not per request)."""
    view, failed = _viewer(token)
    if failed is not None:
        return failed
    headers = _headers(view.cls.etag, view.degraded)
    if etag_matches(request.META.get("HTTP_IF_NONE_MATCH"), view.cls.etag):
        return HttpResponseNotModified(headers=headers)
    return HttpResponse(view.cls.channels_body, content_type=JSON, headers=headers)


def _requested_day(request, tz: str) -> str | HttpResponse:
    days = guide_days.window(tz, time.time())
    if not request.META.get("QUERY_STRING"):
        return days.today
    values = request.GET.getlist("date")
    if not values:
        return days.today
    if len(values) > 1:
        return error(400, "bad_date", "give date at most once")
    raw = values[0]
    try:
        validation.parse_day(raw)
    except validation.BadDay as exc:
        return error(400, "bad_date", str(exc))
    if raw not in days.kept:
        # A well-formed date whose guide is not kept: no such resource rather than bad input.
        return error(404, "date_not_kept", f"the guide is kept from {days.first} to {days.last} ({tz})")
    return raw


@endpoint("GET", auth=VIEWER, query=("date",))
def me_epg(request, token):
    view, failed = _viewer(token)
    if failed is not None:
        return failed
    day = _requested_day(request, view.cls.tz or view.profile.tz)
    if not isinstance(day, str):
        return day
    try:
        entry, from_postgres = cache_reads.epg(view, day)
    except cache_reads.Unavailable as exc:
        return _unavailable(exc)
    headers = _headers(entry.etag, view.degraded or from_postgres)
    if etag_matches(request.META.get("HTTP_IF_NONE_MATCH"), entry.etag):
        return HttpResponseNotModified(headers=headers)
    return HttpResponse(entry.body, content_type=JSON, headers=headers)
