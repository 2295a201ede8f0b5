"""Baselines the API is measured against; served only by the bench server (bench.urls).

- floor: constant bytes, the cheapest answer Django can give through the same fast path
  (no token, no cache read). One of 2 KB, one as large as the warm EPG body
  (BENCH_FLOOR_EPG_BYTES, set by the harness from the bodies it saw).
- naive EPG: the programme guide the way the seed's service built it, on every request:
  ORM queries for the viewer's profile, subscriptions, licences, channels and the day's
  programmes, entitlement in Python, then json.dumps. No cache. Its bytes equal the warm
  EPG's, which the harness checks.
"""
from __future__ import annotations

import json
import os
from datetime import datetime
from zoneinfo import ZoneInfo

from django.db.models import Q
from django.http import HttpResponse
from django.utils import timezone

from api.http import JSON, VIEWER, endpoint
from core.builders import local_day_bounds
from core.models import Channel, Licence, Profile, Programme, Subscription

from .floor_wsgi import constant_json

FLOOR_2K_BYTES = 2048
DEFAULT_FLOOR_EPG_BYTES = 100_000


FLOOR_2K = constant_json(FLOOR_2K_BYTES)
FLOOR_EPG = constant_json(int(os.environ.get("BENCH_FLOOR_EPG_BYTES") or DEFAULT_FLOOR_EPG_BYTES))


def floor_2k(request):
    return HttpResponse(FLOOR_2K, content_type=JSON)


def floor_epg(request):
    return HttpResponse(FLOOR_EPG, content_type=JSON)


def _watchable(profile: Profile, plans: set[str], licences: list[Licence], channels: list[Channel]) -> list[Channel]:
    """Channels licensed in the region now, for the viewer's ISP, and free or subscribed."""
    licensed: dict[int, list[Licence]] = {}
    for lic in licences:
        licensed.setdefault(lic.channel_id, []).append(lic)
    isp = profile.isp.code
    out = []
    for channel in channels:
        rules = licensed.get(channel.id)
        if not rules:
            continue
        admitted = False
        for rule in rules:
            codes = {i.code for i in rule.isps.all()}
            if (rule.isp_mode == Licence.ISP_ALLOW and isp in codes) or (
                rule.isp_mode == Licence.ISP_DENY and isp not in codes) or rule.isp_mode == Licence.ISP_ANY:
                admitted = True
                break
        channel_plans = {p.code for p in channel.plans.all()}
        if admitted and (not channel_plans or channel_plans & plans):
            out.append(channel)
    return out


@endpoint("GET", auth=VIEWER)
def naive_epg(request, token):
    now = timezone.now()
    profile = Profile.objects.select_related("region", "isp").get(pk=token.profile_id)
    plans = set(
        Subscription.objects.filter(profile=profile, starts_at__lte=now)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .values_list("plan__code", flat=True)
    )
    licences = list(
        Licence.objects.filter(region_id=profile.region_id)
        .filter(Q(valid_from__isnull=True) | Q(valid_from__lte=now))
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=now))
        .prefetch_related("isps")
    )
    channels = _watchable(profile, plans, licences, list(Channel.objects.prefetch_related("plans")))
    tz = profile.region.timezone
    zone = ZoneInfo(tz)
    day = now.astimezone(zone).date()
    start, end = local_day_bounds(day, tz)
    by_channel: dict[int, list[dict]] = {}
    for p in Programme.objects.filter(channel__in=[c.id for c in channels], starts_at__lt=end, ends_at__gt=start):
        by_channel.setdefault(p.channel_id, []).append({
            "start": _iso(p.starts_at, zone),
            "end": _iso(p.ends_at, zone),
            "title": p.title,
            "synopsis": p.synopsis,
            "genre": p.genre,
            "age_rating": p.age_rating,
        })
    doc = {
        "date": day.isoformat(),
        "timezone": tz,
        "channels": [
            {"id": c.id, "code": c.code, "name": c.name, "number": c.number, "programmes": by_channel.get(c.id, [])}
            for c in channels
        ],
    }
    # DRF's JSONRenderer defaults, as the seed's service rendered it.
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    return HttpResponse(body, content_type=JSON, headers={"Cache-Control": "private"})


def _iso(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).isoformat()
