"""Entitlement as pure functions: profile facts + licences + now -> channels and reasons."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

GEO_BLOCKED = "geo_blocked"
ISP_RESTRICTED = "isp_restricted"
NOT_SUBSCRIBED = "not_subscribed"

ISP_ANY, ISP_ALLOW, ISP_DENY = "any", "allow", "deny"
# Every mode a licence's ISP rule can have, with what it means (the admin shows these).
ISP_MODES = {ISP_ANY: "any ISP", ISP_ALLOW: "only the listed ISPs", ISP_DENY: "all but the listed ISPs"}


@dataclass(frozen=True, slots=True)
class LicenceRule:
    channel: str
    region: str
    isp_mode: str = ISP_ANY
    isps: frozenset[str] = frozenset()
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def in_force(self, now: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= now) and (
            self.valid_until is None or now < self.valid_until
        )

    def admits_isp(self, isp: str) -> bool:
        if self.isp_mode == ISP_ALLOW:
            return isp in self.isps
        if self.isp_mode == ISP_DENY:
            return isp not in self.isps
        return True


@dataclass(frozen=True, slots=True)
class SubscriptionTerm:
    plan: str
    starts_at: datetime
    expires_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class EntitlementClass:
    """Viewers who share region, ISP and active plans see exactly the same channels."""

    region: str
    isp: str
    plans: frozenset[str]

    @property
    def id(self) -> str:
        return _class_id(self.region, self.isp, self.plans)


@lru_cache(maxsize=65_536)  # a few thousand classes, asked for twice per profile built
def _class_id(region: str, isp: str, plans: frozenset[str]) -> str:
    # Short and fixed-length so it fits a listpack hash field whatever the codes are.
    raw = "\x1f".join([region, isp, *sorted(plans)]).encode()
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def active_plans(subscriptions: Iterable[SubscriptionTerm], now: datetime) -> frozenset[str]:
    return frozenset(s.plan for s in subscriptions if s.active(now))


def channel_decisions(
    cls: EntitlementClass,
    licences: Iterable[LicenceRule],
    channel_plans: Mapping[str, frozenset[str]],
    now: datetime,
) -> dict[str, str | None]:
    """Every known channel -> None when watchable, else the reason it is not.

    `channel_plans` lists every channel (a free channel maps to an empty set);
    `licences` may hold other regions' licences: they are ignored.
    """
    in_region: dict[str, list[LicenceRule]] = {}
    for lic in licences:
        if lic.region == cls.region and lic.in_force(now):
            in_region.setdefault(lic.channel, []).append(lic)
    decisions: dict[str, str | None] = {}
    for channel, plans in channel_plans.items():
        rules = in_region.get(channel)
        if not rules:
            decisions[channel] = GEO_BLOCKED
        elif not any(r.admits_isp(cls.isp) for r in rules):
            decisions[channel] = ISP_RESTRICTED
        elif plans and plans.isdisjoint(cls.plans):
            decisions[channel] = NOT_SUBSCRIBED
        else:
            decisions[channel] = None
    return decisions


def next_change(
    subscriptions: Iterable[SubscriptionTerm] = (),
    licences: Iterable[LicenceRule] = (),
    now: datetime | None = None,
) -> datetime | None:
    """The earliest future moment at which a window opens or closes, or None."""
    moments = [
        t
        for s in subscriptions
        for t in (s.starts_at, s.expires_at)
        if t is not None and (now is None or t > now)
    ] + [
        t
        for lic in licences
        for t in (lic.valid_from, lic.valid_until)
        if t is not None and (now is None or t > now)
    ]
    return min(moments, default=None)
