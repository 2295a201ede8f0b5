"""Ops routes: warm-up jobs (ops.jobs). An ops token is required; bodies are checked first."""
from __future__ import annotations

import orjson
from django.http import HttpResponse

from ops import events, jobs
from ops.models import JobState, WarmupEvent, WarmupJob
from ops.scope import BadScope
from ops.scope import parse as parse_scope

from .errors import error
from .http import JSON, OPS, endpoint

MAX_BODY = 1024 * 1024
LIST_LIMIT = 100


def _json(doc, status: int = 200, **headers) -> HttpResponse:
    return HttpResponse(orjson.dumps(doc), status=status, content_type=JSON, headers=headers)


def read_json(request):
    """The request's JSON body, or an error response (415, 413, 400)."""
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return error(415, "unsupported_media_type", "send the body as application/json")
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
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return error(400, "bad_json", f"the body is not JSON: {exc}")


def _location(job: WarmupJob) -> str:
    return f"/api/v1/ops/warmups/{job.pk}"


@endpoint("GET", "POST", auth=OPS, query=("limit", "state"))
def warmups(request, token):
    if request.method == "GET":
        return _list(request)
    doc = read_json(request)
    if isinstance(doc, HttpResponse):
        return doc
    try:
        job, _created = jobs.submit(parse_scope(doc), created_by="api")
    except BadScope as exc:
        return error(400, "bad_scope", str(exc))
    # A scope already queued or running answers with that job: one warm-up per scope.
    return _json(jobs.progress(job), 202, Location=_location(job))


def _list(request):
    try:
        limit = int(request.GET.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= LIST_LIMIT:
        return error(400, "bad_limit", f"limit must be a number from 1 to {LIST_LIMIT}")
    found = WarmupJob.objects.all()
    if (state := request.GET.get("state")) is not None:
        if state not in JobState.values:
            return error(400, "bad_state", f"state must be one of {', '.join(JobState.values)}")
        found = found.filter(state=state)
    return _json({"jobs": [jobs.progress(job) for job in found[:limit]]})


def _job(job_id: str) -> WarmupJob | HttpResponse:
    if not job_id.isascii() or not job_id.isdigit() or len(job_id) > 18:
        return error(400, "bad_job_id", "a job id is a number")
    job = WarmupJob.objects.filter(pk=int(job_id)).first()
    return job if job is not None else error(404, "not_found", f"no warm-up job {job_id}")


@endpoint("GET", "DELETE", auth=OPS)
def warmup(request, token, job_id):
    job = _job(job_id)
    if isinstance(job, HttpResponse):
        return job
    if request.method == "DELETE" and not jobs.cancel(job):
        job.refresh_from_db()
        return error(409, "job_finished", f"warm-up job {job.pk} is already {job.state}")
    job.refresh_from_db()
    return _json(jobs.progress(job))



# -- event warm-ups ------------------------------------------------------------------------


@endpoint("GET", "POST", auth=OPS)
def warmup_events(request, token):
    if request.method == "GET":
        return _json({"events": [events.doc(e) for e in WarmupEvent.objects.all()[:LIST_LIMIT]]})
    body = read_json(request)
    if isinstance(body, HttpResponse):
        return body
    try:
        event = events.save(events.apply(WarmupEvent(), body))
    except events.BadEvent as exc:
        return error(400, "bad_event", str(exc))
    return _json(events.doc(event), 201, Location=f"/api/v1/ops/events/{event.pk}")


@endpoint("GET", "PATCH", "DELETE", auth=OPS)
def warmup_event(request, token, event_id):
    if not event_id.isascii() or not event_id.isdigit() or len(event_id) > 18:
        return error(400, "bad_event_id", "an event id is a number")
    event = WarmupEvent.objects.filter(pk=int(event_id)).first()
    if event is None:
        return error(404, "not_found", f"no event {event_id}")
    if request.method == "DELETE":
        events.delete(event)
        return HttpResponse(status=204)
    if request.method == "PATCH":
        body = read_json(request)
        if isinstance(body, HttpResponse):
            return body
        try:
            event = events.save(events.apply(event, body, partial=True))
        except events.BadEvent as exc:
            return error(400, "bad_event", str(exc))
    return _json(events.doc(event))
