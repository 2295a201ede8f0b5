"""The fault scenarios' write stream, in a process of its own (tests/acceptance/stack.py):

    python -m tests.acceptance.writer --rate 50

changes rows at about `rate` per second until SIGTERM, through each kind of writer: the ORM
(signals and triggers), QuerySet.update and raw SQL (triggers only), on profiles, subscriptions,
programmes and licences. A write that fails (Postgres restarting, the broker down under the
signal path) is counted and the stream goes on; then it prints one JSON line of counts.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from collections import Counter
from datetime import timedelta

import django
import orjson


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=50.0)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()

    from django.db import DatabaseError, connection
    from django.utils import timezone

    from core.models import Isp, Licence, Plan, Profile, Programme, Subscription

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    rng = random.Random(7)
    counts: Counter = Counter()
    isps = list(Isp.objects.values_list("pk", flat=True))
    plans = list(Plan.objects.values_list("pk", flat=True))
    top = Profile.objects.order_by("-pk").values_list("pk", flat=True).first()

    def orm_save():
        profile = Profile.objects.get(pk=rng.randint(1, top))
        profile.isp_id = rng.choice(isps)
        profile.save()

    def queryset_update():
        Subscription.objects.filter(profile_id=rng.randint(1, top)).update(plan_id=rng.choice(plans))

    def orm_create_delete():
        pk = rng.randint(1, top)
        if rng.random() < 0.5:
            Subscription.objects.create(profile_id=pk, plan_id=rng.choice(plans),
                                        starts_at=timezone.now() - timedelta(days=1))
        else:
            Subscription.objects.filter(pk__in=Subscription.objects.filter(profile_id=pk).values("pk")[:1]).delete()

    def raw_sql():
        with connection.cursor() as cur:
            cur.execute("UPDATE core_profile SET isp_id = %s WHERE id = %s", [rng.choice(isps), rng.randint(1, top)])

    def programme_title():
        programme = Programme.objects.order_by("?").first()
        programme.title = f"retitled {rng.randint(0, 10**6)}"
        programme.save()

    def licence_window():
        # Rare and wide: a licence change rebuilds every class of its region.
        Licence.objects.filter(pk=Licence.objects.order_by("?").values("pk")[:1]).update(
            isp_mode=rng.choice(["any", "allow", "deny"]))

    kinds = [(orm_save, 30), (queryset_update, 20), (orm_create_delete, 20), (raw_sql, 20), (programme_title, 9),
             (licence_window, 1)]
    writers, weights = zip(*kinds, strict=True)
    print("writing", flush=True)
    interval, next_at = 1 / args.rate, time.monotonic()
    while not stop:
        write = rng.choices(writers, weights)[0]
        try:
            write()
            counts["writes"] += 1
            counts[write.__name__] += 1
        except DatabaseError as exc:
            counts[f"error {type(exc).__name__}"] += 1
            connection.close()  # a connection Postgres ended: the next write opens a new one
            time.sleep(0.1)
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    print(orjson.dumps({"writes": counts.pop("writes", 0), **counts}).decode(), flush=True)


if __name__ == "__main__":
    sys.exit(main())
