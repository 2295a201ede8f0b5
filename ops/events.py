"""Event warm-ups: an event's scope is warmed `lead_seconds` before it starts, by a one-off
django-celery-beat clocked schedule kept in step with the event (created, moved, removed
with it). When it fires, `prewarm.event_warmup` submits an ordinary warm-up job."""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core import validation
from workers.app import INVALIDATE_QUEUE

from .models import WarmupEvent
from .scope import BadScope, parse

log = logging.getLogger("prewarm.warmup")

TASK = "prewarm.event_warmup"  # ops.tasks.event_warmup
MAX_LEAD_SECONDS = 7 * 24 * 3600
MAX_AHEAD = timedelta(days=366)
FIELDS = ("name", "starts_at", "lead_seconds", "scope")


class BadEvent(ValueError):
    """One line saying what is wrong (a 400 body, or an admin form error)."""


def schedule_name(event_id: int) -> str:
    return f"prewarm: event warm-up {event_id}"


def _moment(value) -> datetime:
    try:
        moment = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well formed, but no such moment (month 13, hour 25)
        moment = None
    if moment is None or moment.tzinfo is None:
        raise BadEvent("starts_at must be an ISO 8601 date-time with its UTC offset, e.g. 2026-12-12T20:00:00Z")
    try:
        return moment.astimezone(UTC)  # Postgres keeps offsets up to 15:59 only; the moment is what counts
    except OverflowError:  # year 1 east of UTC, year 9999 west of it
        raise BadEvent(f"starts_at must be within {MAX_AHEAD.days} days from now") from None


def apply(event: WarmupEvent, doc: dict, *, partial: bool = False) -> WarmupEvent:
    """Set the fields `doc` names on `event` (all of them unless `partial`), checked."""
    if not isinstance(doc, dict):
        raise BadEvent("the body must be a JSON object")
    unknown = set(doc) - set(FIELDS)
    if unknown:
        raise BadEvent(f"unknown fields: {validation.field_names(unknown)}")
    missing = [] if partial else [f for f in ("name", "starts_at", "scope") if f not in doc]
    if missing:
        raise BadEvent(f"missing fields: {', '.join(missing)}")
    if "name" in doc:
        if not isinstance(doc["name"], str) or not 1 <= len(doc["name"].strip()) <= 200:
            raise BadEvent("name must be a string of 1 to 200 characters")
        if not doc["name"].isprintable():  # Postgres refuses NUL in text: that was a 500
            raise BadEvent("name must not contain control characters")
        event.name = doc["name"].strip()
    if "starts_at" in doc:
        event.starts_at = _moment(doc["starts_at"])
    if "lead_seconds" in doc:
        lead = doc["lead_seconds"]
        if not isinstance(lead, int) or isinstance(lead, bool) or not 0 <= lead <= MAX_LEAD_SECONDS:
            raise BadEvent(f"lead_seconds must be a whole number from 0 to {MAX_LEAD_SECONDS}")
        event.lead_seconds = lead
    if "scope" in doc:
        try:
            event.scope = parse(doc["scope"]).as_dict()
        except BadScope as exc:
            raise BadEvent(f"scope: {exc}") from None
    check(event)
    return event


def check(event: WarmupEvent) -> None:
    """What the API and the admin both refuse: a moment too far ahead, a warm-up time passed."""
    now = timezone.now()
    if event.starts_at > now + MAX_AHEAD:
        raise BadEvent(f"starts_at must be within {MAX_AHEAD.days} days from now")
    if event.starts_at <= now:
        raise BadEvent(f"starts_at ({event.starts_at.isoformat()}) has passed")
    if event.warmup_at <= now:
        raise BadEvent(f"the warm-up time (starts_at minus lead_seconds: {event.warmup_at.isoformat()}) has passed")


def save(event: WarmupEvent) -> WarmupEvent:
    """Store the event and (re)point its clocked schedule at its warm-up time."""
    from django_celery_beat.models import ClockedSchedule, PeriodicTask

    with transaction.atomic():
        event.save()
        task = PeriodicTask.objects.filter(name=schedule_name(event.pk)).select_related("clocked").first()
        if task is not None and task.clocked is not None:
            task.clocked.clocked_time = event.warmup_at
            task.clocked.save()
        clocked = task.clocked if task is not None and task.clocked else ClockedSchedule.objects.create(
            clocked_time=event.warmup_at
        )
        PeriodicTask.objects.update_or_create(
            name=schedule_name(event.pk),
            # enabled and last_run_at reset: moving an event that already fired arms it again
            defaults={"task": TASK, "clocked": clocked, "one_off": True, "enabled": True, "last_run_at": None,
                      "args": f"[{event.pk}]",
                      "queue": INVALIDATE_QUEUE, "description": f"Warms {event.scope} before {event.name}."},
        )
    return event


def delete(event: WarmupEvent) -> None:
    """Remove the event, its schedule and the schedule's clock (its jobs stay, unlinked)."""
    from django_celery_beat.models import ClockedSchedule, PeriodicTask

    with transaction.atomic():
        task = PeriodicTask.objects.filter(name=schedule_name(event.pk)).first()
        if task is not None:
            clocked_id = task.clocked_id
            task.delete()
            ClockedSchedule.objects.filter(pk=clocked_id).delete()
        event.delete()


def doc(event: WarmupEvent) -> dict:
    return {
        "id": event.pk, "name": event.name, "starts_at": event.starts_at.isoformat(),
        "lead_seconds": event.lead_seconds, "warmup_at": event.warmup_at.isoformat(), "scope": event.scope,
        "jobs": list(event.jobs.order_by("id").values_list("id", flat=True)),
    }


def fire(event_id: int):
    """The schedule fired: submit the event's warm-up (the running job if one covers it)."""
    from . import jobs

    event = WarmupEvent.objects.filter(pk=event_id).first()
    if event is None:
        return None  # deleted after beat read its schedule
    try:
        job, _ = jobs.submit(parse(event.scope), created_by="event", event=event)
    except BadScope as exc:  # a region renamed or removed since: nothing to retry
        log.error("event %s (%s): its warm-up was refused: %s", event.pk, event.name, exc)
        return None
    return job
