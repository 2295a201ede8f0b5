"""The django-redis peer: the naive views' answer bytes in Django's cache, deleted by signals.

What a team does with django-redis 7 and the seed's 5-minute interval: the answer's bytes per
viewer and day (EPG) and the viewer's playback decisions for every channel (one key), kept
CACHE_TTL_S. Signal receivers delete after commit: a viewer's keys when its profile or
subscriptions change; a whole family by delete_pattern (SCAN + DEL over the peer's db) when
shared rows change. Writes that send no signal (QuerySet.update, bulk_create, raw SQL,
another service) wait out the TTL: the point of the comparison.
"""
from __future__ import annotations

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from api.errors import error
from api.http import VIEWER, endpoint
from core import validation

from . import naive

CACHE_TTL_S = 300
TODAY = "today"  # the key's day when none is asked for: lives at most CACHE_TTL_S past midnight
# Patterns of the two key families (django-redis adds its KEY_PREFIX and version).
EPG_FAMILY = "epg:*"
PLAYBACK_FAMILY = "playback:*"


def epg_key(profile_id: int, day: str) -> str:
    return f"epg:{profile_id}:{day}"


def playback_key(profile_id: int) -> str:
    return f"playback:{profile_id}"


@endpoint("GET", auth=VIEWER, query=("date",))
def me_epg(request, token):
    values = request.GET.getlist("date") if request.META.get("QUERY_STRING") else []
    key = epg_key(token.profile_id, values[0] if values else TODAY) if len(values) <= 1 else None
    if key is not None:
        body = cache.get(key)
        if body is not None:
            return naive.answer(200, body)
    response = naive.epg_answer(request, token.profile_id)
    if key is not None and response.status_code == 200:
        cache.set(key, response.content, CACHE_TTL_S)
    return response


@endpoint("GET", auth=VIEWER)
def me_playback(request, token, channel_code):
    if not validation.is_code(channel_code):
        return naive.playback_answer(token.profile_id, channel_code)  # the 400, uncached
    key = playback_key(token.profile_id)
    decisions = cache.get(key)
    if decisions is None:
        decisions = naive.all_playback_answers(token.profile_id)
        if decisions is None:  # no such profile
            return naive.playback_answer(token.profile_id, channel_code)
        cache.set(key, decisions, CACHE_TTL_S)
    answer = decisions.get(channel_code)
    if answer is None:  # the decisions name every channel: junk codes never reach Postgres
        return error(404, "channel_not_found", f"no channel {channel_code!r}")
    return naive.answer(*answer)


# -- invalidation: receivers defer to after commit, as a team following the docs would ------


def _forget_viewer(profile_id: int) -> None:
    cache.delete_pattern(epg_key(profile_id, "*"))
    cache.delete(playback_key(profile_id))


def _forget_families(*patterns: str) -> None:
    for pattern in patterns:
        cache.delete_pattern(pattern)


def profile_changed(sender, instance, **kwargs):
    transaction.on_commit(lambda pk=instance.pk: _forget_viewer(pk))


def subscription_changed(sender, instance, **kwargs):
    transaction.on_commit(lambda pk=instance.profile_id: _forget_viewer(pk))


def programme_changed(sender, **kwargs):
    transaction.on_commit(lambda: _forget_families(EPG_FAMILY))


def lineup_changed(sender, **kwargs):
    # Channels, licences, plans, regions, ISPs and their m2m: what anyone may watch.
    transaction.on_commit(lambda: _forget_families(EPG_FAMILY, PLAYBACK_FAMILY))


def connect() -> None:
    """Connect the receivers (DjangoRedisPeerConfig.ready)."""
    from core.models import Channel, Isp, Licence, Plan, Profile, Programme, Region, Subscription

    uid = "bench.peers.djredis"
    for name, signal in (("save", post_save), ("delete", post_delete)):
        signal.connect(profile_changed, sender=Profile, dispatch_uid=f"{uid}.profile.{name}")
        signal.connect(subscription_changed, sender=Subscription, dispatch_uid=f"{uid}.subscription.{name}")
        signal.connect(programme_changed, sender=Programme, dispatch_uid=f"{uid}.programme.{name}")
        for model in (Channel, Licence, Plan, Region, Isp):
            signal.connect(lineup_changed, sender=model, dispatch_uid=f"{uid}.{model.__name__}.{name}")
    for through in (Channel.plans.through, Licence.isps.through):
        m2m_changed.connect(lineup_changed, sender=through, dispatch_uid=f"{uid}.{through.__name__}")
