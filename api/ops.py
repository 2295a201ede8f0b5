"""Ops routes: warm-up jobs. Auth and input are checked; the job machinery is not here yet (501)."""
from __future__ import annotations

import re

import orjson

from core import validation

from .errors import error
from .http import OPS, endpoint

MAX_BODY = 1024 * 1024
MAX_ITEMS = 10_000
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SCOPE_KEYS = {"all", "regions", "profiles", "epg_dates"}


class BadScope(ValueError):
    pass


def parse_scope(doc) -> dict:
    """Validate a warm-up request: {"all": true} or any of regions, profiles, epg_dates."""
    if not isinstance(doc, dict):
        raise BadScope("the body must be a JSON object")
    unknown = set(doc) - SCOPE_KEYS
    if unknown:
        raise BadScope(f"unknown fields: {', '.join(sorted(unknown))}")
    if not doc:
        raise BadScope("give all, regions, profiles or epg_dates")
    scope: dict = {}
    if "all" in doc:
        if doc["all"] is not True:
            raise BadScope("all must be true when given")
        if len(doc) > 1:
            raise BadScope("all cannot be combined with other fields")
        return {"all": True}
    for name, check, what in (
        ("regions", validation.is_code, "region codes"),
        ("profiles", lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**63, "profile ids"),
        ("epg_dates", validation.is_day, "YYYY-MM-DD dates"),
    ):
        if name in doc:
            values = doc[name]
            if not isinstance(values, list) or not values or len(values) > MAX_ITEMS:
                raise BadScope(f"{name} must be a list of 1 to {MAX_ITEMS} {what}")
            if not all(check(v) for v in values):
                raise BadScope(f"{name} must hold only {what}")
            scope[name] = values
    return scope


def _not_yet():
    return error(501, "not_implemented", "warm-up jobs are not available in this build yet")


@endpoint("POST", auth=OPS)
def warmups(request, token):
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return error(415, "unsupported_media_type", "send the scope as application/json")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return error(400, "bad_request", "Content-Length is not a number")
    if length > MAX_BODY:
        return error(413, "body_too_large", f"the body may be at most {MAX_BODY} bytes")
    raw = request.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        return error(413, "body_too_large", f"the body may be at most {MAX_BODY} bytes")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return error(400, "bad_json", f"the body is not JSON: {exc}")
    try:
        parse_scope(doc)
    except BadScope as exc:
        return error(400, "bad_scope", str(exc))
    return _not_yet()


@endpoint("GET", auth=OPS)
def warmup(request, token, job_id):
    if not JOB_ID.fullmatch(job_id):
        return error(400, "bad_job_id", "a job id is 1-64 letters, digits, '-' or '_'")
    return _not_yet()
