"""Signal path: ORM changes queue rebuilds after commit (a rollback queues nothing).

The trigger-fed outbox sees every change too (QuerySet.update, raw SQL, other services);
this path only makes ORM writes fast, so a failure here is logged, never raised.
"""
from __future__ import annotations

import logging
import time

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from core import models

from . import events

log = logging.getLogger(__name__)


def _after_commit(kind: str, ids: list[int]) -> None:
    def send():
        try:
            events.publish(kind, ids, time.time(), defer_to_relay=True)
        except Exception as exc:  # the outbox relay will deliver it
            log.warning("signal path could not queue %s %s: %s", kind, ids, exc)

    transaction.on_commit(send)


def _all_regions() -> list[int]:
    return list(models.Region.objects.values_list("id", flat=True))


def _profile(sender, instance, **kwargs):
    _after_commit(events.PROFILE, [instance.pk])


def _subscription(sender, instance, **kwargs):
    _after_commit(events.PROFILE, [instance.profile_id])


def _licence(sender, instance, **kwargs):
    _after_commit(events.REGION, [instance.region_id])


def _licence_isps(sender, instance, action, **kwargs):
    if action.startswith("post_") and isinstance(instance, models.Licence):
        _after_commit(events.REGION, [instance.region_id])
    elif action.startswith("post_"):  # changed from the Isp side
        _after_commit(events.REGION, _all_regions())


def _channel(sender, instance, **kwargs):
    _after_commit(events.CHANNEL, [instance.pk])
    _after_commit(events.REGION, _all_regions())


def _channel_plans(sender, action, **kwargs):
    if action.startswith("post_"):
        _after_commit(events.REGION, _all_regions())


def _programme(sender, instance, **kwargs):
    _after_commit(events.CHANNEL, [instance.channel_id])


def _region(sender, instance, **kwargs):
    _after_commit(events.REGION, [instance.pk])


def connect() -> None:
    for signal in (post_save, post_delete):
        for model, receiver in (
            (models.Profile, _profile),
            (models.Subscription, _subscription),
            (models.Licence, _licence),
            (models.Channel, _channel),
            (models.Programme, _programme),
            (models.Region, _region),
        ):
            signal.connect(receiver, sender=model, dispatch_uid=f"prewarm.{model.__name__}.{signal is post_save}")
    m2m_changed.connect(_licence_isps, sender=models.Licence.isps.through, dispatch_uid="prewarm.licence_isps")
    m2m_changed.connect(_channel_plans, sender=models.Channel.plans.through, dispatch_uid="prewarm.channel_plans")


