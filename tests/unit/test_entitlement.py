"""Entitlement rules: geoblocking, ISP allow/deny, free channels, subscription and licence windows."""
from datetime import UTC, datetime, timedelta

from core.entitlement import (
    GEO_BLOCKED,
    ISP_RESTRICTED,
    NOT_SUBSCRIBED,
    EntitlementClass,
    LicenceRule,
    SubscriptionTerm,
    active_plans,
    channel_decisions,
    next_change,
)

NOW = datetime(2026, 6, 1, 20, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

CHANNEL_PLANS = {
    "news": frozenset(),  # free
    "sport1": frozenset({"sports", "premium"}),
    "movies": frozenset({"premium"}),
    "local": frozenset(),
}
LICENCES = [
    LicenceRule("news", "EU-WEST"),
    LicenceRule("news", "US-EAST"),
    LicenceRule("sport1", "EU-WEST", "allow", frozenset({"fibra"})),
    LicenceRule("movies", "EU-WEST", "deny", frozenset({"cheapnet"})),
    # "local" is licensed nowhere in EU-WEST: geoblocked there.
    LicenceRule("local", "US-EAST"),
]


def entitled_channels(c, licences, channel_plans, now):
    """The watchable channels: those channel_decisions gives no reason against."""
    return {ch for ch, reason in channel_decisions(c, licences, channel_plans, now).items() if reason is None}


def cls(region="EU-WEST", isp="fibra", plans=()):
    return EntitlementClass(region, isp, frozenset(plans))


def test_free_channel_needs_only_a_licence():
    assert entitled_channels(cls(), LICENCES, CHANNEL_PLANS, NOW) == {"news"}


def test_geoblocked_channel_is_refused_with_reason():
    decisions = channel_decisions(cls(plans={"premium"}), LICENCES, CHANNEL_PLANS, NOW)
    assert decisions["local"] == GEO_BLOCKED
    us = channel_decisions(cls(region="US-EAST"), LICENCES, CHANNEL_PLANS, NOW)
    assert us["local"] is None and us["sport1"] == GEO_BLOCKED


def test_isp_allow_list():
    assert "sport1" in entitled_channels(cls(isp="fibra", plans={"sports"}), LICENCES, CHANNEL_PLANS, NOW)
    decisions = channel_decisions(cls(isp="cheapnet", plans={"sports"}), LICENCES, CHANNEL_PLANS, NOW)
    assert decisions["sport1"] == ISP_RESTRICTED


def test_isp_deny_list():
    assert "movies" in entitled_channels(cls(isp="fibra", plans={"premium"}), LICENCES, CHANNEL_PLANS, NOW)
    decisions = channel_decisions(cls(isp="cheapnet", plans={"premium"}), LICENCES, CHANNEL_PLANS, NOW)
    assert decisions["movies"] == ISP_RESTRICTED


def test_paid_channel_needs_one_of_its_plans():
    decisions = channel_decisions(cls(plans={"kids"}), LICENCES, CHANNEL_PLANS, NOW)
    assert decisions["sport1"] == NOT_SUBSCRIBED
    assert decisions["movies"] == NOT_SUBSCRIBED
    assert entitled_channels(cls(plans={"premium"}), LICENCES, CHANNEL_PLANS, NOW) == {"news", "sport1", "movies"}


def test_one_admitting_licence_among_several_is_enough():
    extra = LICENCES + [LicenceRule("sport1", "EU-WEST", "allow", frozenset({"cheapnet"}))]
    assert "sport1" in entitled_channels(cls(isp="cheapnet", plans={"sports"}), extra, CHANNEL_PLANS, NOW)


def test_subscription_windows():
    subs = [
        SubscriptionTerm("premium", NOW - 10 * HOUR, NOW - HOUR),  # expired
        SubscriptionTerm("sports", NOW + HOUR),  # future
        SubscriptionTerm("kids", NOW - HOUR, NOW + HOUR),  # active, ends soon
        SubscriptionTerm("movies", NOW - HOUR),  # open-ended
    ]
    assert active_plans(subs, NOW) == {"kids", "movies"}
    # The expiry moment itself is exclusive, the start inclusive.
    assert active_plans(subs, NOW + HOUR) == {"sports", "movies"}
    assert active_plans(subs, NOW - HOUR) == {"kids", "movies"}
    assert active_plans(subs, NOW - 2 * HOUR) == {"premium"}


def test_licence_windows():
    windowed = [
        LicenceRule("news", "EU-WEST", valid_from=NOW + HOUR),
        LicenceRule("local", "EU-WEST", valid_until=NOW),
        LicenceRule("sport1", "EU-WEST", valid_from=NOW - HOUR, valid_until=NOW + HOUR),
    ]
    c = cls(plans={"sports"})
    assert entitled_channels(c, windowed, CHANNEL_PLANS, NOW) == {"sport1"}
    assert entitled_channels(c, windowed, CHANNEL_PLANS, NOW - timedelta(seconds=1)) == {"local", "sport1"}
    assert entitled_channels(c, windowed, CHANNEL_PLANS, NOW + HOUR) == {"news"}


def test_class_id_is_stable_short_and_order_free():
    a = EntitlementClass("EU-WEST", "fibra", frozenset({"sports", "premium"}))
    b = EntitlementClass("EU-WEST", "fibra", frozenset({"premium", "sports"}))
    assert a.id == b.id and len(a.id) == 16
    assert a.id != cls(plans={"sports"}).id


def test_next_change_is_the_earliest_future_edge():
    subs = [SubscriptionTerm("kids", NOW - HOUR, NOW + 3 * HOUR)]
    lics = [LicenceRule("news", "EU-WEST", valid_from=NOW - HOUR, valid_until=NOW + 2 * HOUR)]
    assert next_change(subs, lics, NOW) == NOW + 2 * HOUR
    assert next_change([], [], NOW) is None
