"""The naive peers' views: ORM queries and entitlement on every request, then json.dumps (or orjson).

This is the seed's service before any cache, extended to the product's semantics: the guide
for any kept day (`?date=`, else today in the region's zone) and the playback decision. The
time windows (subscriptions, licences) are applied in Python by core.entitlement's pure
functions, so no query carries `now` as a parameter: cacheops and cachalot key a cached
query by its SQL and parameters, and a query with a new `now` each request would never hit.
The cacheops and cachalot peers serve these very views. Bodies equal the product's bytes
(bench.peers.check).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

import orjson
from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone

from api.entries import REASON_MESSAGES
from api.errors import error
from api.http import JSON, VIEWER, endpoint
from api.views import _requested_day as requested_day
from core import validation
from core.builders import local_day_bounds
from core.entitlement import EntitlementClass, LicenceRule, SubscriptionTerm, active_plans, channel_decisions
from core.models import Channel, Licence, Profile, Programme, Subscription

CACHE_CONTROL = "private"
UNKNOWN_REASON = "you may not watch this channel now"  # api.entries.playback_body's fallback


def json_dumps(doc) -> bytes:
    """DRF's JSONRenderer defaults, as the seed's service rendered its answers."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


DUMPS: dict[str, Callable[[object], bytes]] = {"json": json_dumps, "orjson": orjson.dumps}


def dumps(doc) -> bytes:
    return DUMPS[getattr(settings, "BENCH_PEER_JSON", "json")](doc)


# -- documents (pure) ---------------------------------------------------------------------


def playback_doc(code: str, reason: str | None) -> tuple[int, dict]:
    """(status, document) of a playback answer, as api.entries.playback_body builds it."""
    if reason is None:
        return 200, {"channel": code, "allowed": True}
    message = REASON_MESSAGES.get(reason, UNKNOWN_REASON)
    return 403, {"error": {"code": reason, "message": message, "channel": code}}


def programme_doc(starts_at: datetime, ends_at: datetime, title: str, synopsis: str, genre: str,
                  age_rating: str, zone: ZoneInfo) -> dict:
    return {
        "start": starts_at.astimezone(zone).isoformat(),
        "end": ends_at.astimezone(zone).isoformat(),
        "title": title,
        "synopsis": synopsis,
        "genre": genre,
        "age_rating": age_rating,
    }


def epg_doc(day: date, tz: str, channels: Iterable[tuple[int, str, str, int, list[dict]]]) -> dict:
    """core.builders.assemble_epg's document: channels as (id, code, name, number, programmes)."""
    return {
        "date": day.isoformat(),
        "timezone": tz,
        "channels": [
            {"id": cid, "code": code, "name": name, "number": number, "programmes": programmes}
            for cid, code, name, number, programmes in channels
        ],
    }


# -- queries (one ORM query each; cacheops and cachalot cache exactly these) ---------------


def _profile(profile_id: int) -> Profile:
    qs = Profile.objects.all()
    # cacheops' README (caveat 3): a change to a select_related object does not invalidate
    # the cached queryset; it tells you to use prefetch_related, so its peer does.
    if getattr(settings, "BENCH_PEER_PROFILE_RELATED", "select") == "prefetch":
        qs = qs.prefetch_related("region", "isp")
    else:
        qs = qs.select_related("region", "isp")
    return qs.get(pk=profile_id)


def _class(profile: Profile, now: datetime) -> EntitlementClass:
    terms = [
        SubscriptionTerm(plan, starts_at, expires_at)
        for plan, starts_at, expires_at in Subscription.objects.filter(profile_id=profile.pk).values_list(
            "plan__code", "starts_at", "expires_at")
    ]
    return EntitlementClass(profile.region.code, profile.isp.code, active_plans(terms, now))


def _rules(licences: Iterable[Licence], region: str, channel_codes: dict[int, str]) -> list[LicenceRule]:
    return [
        LicenceRule(channel_codes[lic.channel_id], region, lic.isp_mode, frozenset(i.code for i in lic.isps.all()),
                    lic.valid_from, lic.valid_until)
        for lic in licences
        if lic.channel_id in channel_codes
    ]


def _lineup(profile: Profile) -> tuple[list[Channel], dict[str, str | None]]:
    """Every channel (in guide order) and the viewer's decision for each at this moment."""
    now = timezone.now()
    cls = _class(profile, now)
    channels = list(Channel.objects.prefetch_related("plans"))  # ordered by number
    codes = {c.id: c.code for c in channels}
    rules = _rules(Licence.objects.filter(region_id=profile.region_id).prefetch_related("isps"), cls.region, codes)
    plans = {c.code: frozenset(p.code for p in c.plans.all()) for c in channels}
    return channels, channel_decisions(cls, rules, plans, now)


def _profile_or_error(profile_id: int) -> Profile | HttpResponse:
    try:
        return _profile(profile_id)
    except Profile.DoesNotExist:
        return error(404, "profile_not_found", "this token's profile does not exist")


def answer(status: int, body: bytes) -> HttpResponse:
    """A viewer answer as the product sends it (JSON, private), built or cached bytes."""
    response = HttpResponse(body, status=status, content_type=JSON, headers={"Cache-Control": CACHE_CONTROL})
    if status != 200:
        response._has_been_logged = True  # a refusal is an answer, not an error (as the product)
    return response


# -- views --------------------------------------------------------------------------------


def epg_answer(request, profile_id: int) -> HttpResponse:
    profile = _profile_or_error(profile_id)
    if isinstance(profile, HttpResponse):
        return profile
    tz = profile.region.timezone
    day = requested_day(request, tz)  # the product's ?date= rules and messages, not a copy
    if not isinstance(day, str):
        return day
    channels, decisions = _lineup(profile)
    allowed = [c for c in channels if decisions[c.code] is None]
    the_day = date.fromisoformat(day)
    start, end = local_day_bounds(the_day, tz)
    zone = ZoneInfo(tz)
    by_channel: dict[int, list[dict]] = {}
    for p in Programme.objects.filter(channel_id__in=[c.id for c in allowed], starts_at__lt=end, ends_at__gt=start):
        by_channel.setdefault(p.channel_id, []).append(
            programme_doc(p.starts_at, p.ends_at, p.title, p.synopsis, p.genre, p.age_rating, zone))
    doc = epg_doc(the_day, tz, ((c.id, c.code, c.name, c.number, by_channel.get(c.id, [])) for c in allowed))
    return answer(200, dumps(doc))


def playback_answer(profile_id: int, channel_code: str) -> HttpResponse:
    if not validation.is_code(channel_code):
        return error(400, "bad_channel_code", f"a channel code is {validation.CODE_RULE}")
    profile = _profile_or_error(profile_id)
    if isinstance(profile, HttpResponse):
        return profile
    channel = Channel.objects.prefetch_related("plans").filter(code=channel_code).first()
    if channel is None:
        return error(404, "channel_not_found", f"no channel {channel_code!r}")
    now = timezone.now()
    cls = _class(profile, now)
    rules = _rules(Licence.objects.filter(region_id=profile.region_id, channel_id=channel.id).prefetch_related("isps"),
                   cls.region, {channel.id: channel.code})
    reason = channel_decisions(cls, rules, {channel.code: frozenset(p.code for p in channel.plans.all())},
                               now)[channel.code]
    status, doc = playback_doc(channel.code, reason)
    return answer(status, dumps(doc))


def all_playback_answers(profile_id: int) -> dict[str, tuple[int, bytes]] | None:
    """Every channel code -> (status, body) of its playback answer for this viewer now; None
    when the profile does not exist (the django-redis peer caches this per viewer)."""
    try:
        profile = _profile(profile_id)
    except Profile.DoesNotExist:
        return None
    _, decisions = _lineup(profile)
    out = {}
    for code, reason in decisions.items():
        status, doc = playback_doc(code, reason)
        out[code] = (status, dumps(doc))
    return out


@endpoint("GET", auth=VIEWER, query=("date",))
def me_epg(request, token):
    return epg_answer(request, token.profile_id)


@endpoint("GET", auth=VIEWER)
def me_playback(request, token, channel_code):
    return playback_answer(token.profile_id, channel_code)
