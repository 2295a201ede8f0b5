"""The local cache's rules, without Redis: tickets, dependencies, bounds."""
from api.local_cache import LocalCache


def cache(entries=10, size=10_000):
    c = LocalCache(entries, size)
    c.clear(enabled=True)
    return c


def test_commit_then_get():
    c = cache()
    t = c.begin(["k"])
    assert c.commit(t, "e", "v")
    assert c.get("e") == "v"


def test_invalidation_between_read_and_commit_refuses_the_commit():
    c = cache()
    t = c.begin(["k1", "k2"])
    c.invalidate(["k2"])
    assert not c.commit(t, "e", "old")
    assert c.get("e") is None


def test_unrelated_invalidation_does_not_refuse():
    c = cache()
    t = c.begin(["k1"])
    c.invalidate(["other"])
    assert c.commit(t, "e", "v")


def test_a_ticket_naming_a_class_and_its_fragments_dies_with_any_fragment():
    c = cache()
    t = c.begin(["class", "frag"])
    c.invalidate(["frag"])
    assert not c.commit(t, "epg", "old")


def test_invalidation_drops_every_entry_that_depends_on_the_key():
    c = cache()
    c.commit(c.begin(["class", "f1"]), "epg1", "a")
    c.commit(c.begin(["class", "f2"]), "epg2", "b")
    c.commit(c.begin(["f2"]), "frag-only", "c")
    c.invalidate(["class"])
    assert (c.get("epg1"), c.get("epg2"), c.get("frag-only")) == (None, None, "c")
    c.invalidate(["f2"])
    assert c.get("frag-only") is None and len(c) == 0 and c.size_bytes == 0


def test_clear_kills_open_tickets_and_disabled_cache_stores_nothing():
    c = cache()
    t = c.begin(["k"])
    c.clear(enabled=False)
    assert not c.commit(t, "e", "v")
    assert c.begin(["k"]) is None
    assert not c.commit(None, "e", "v")
    c.clear(enabled=True)
    assert c.commit(c.begin(["k"]), "e", "v")


def test_bounded_by_entries_and_bytes_least_recently_used_first():
    c = cache(entries=3, size=1000)
    for name in "abc":
        c.commit(c.begin([name]), name, name, weight=100)
    c.get("a")  # now b is the oldest
    c.commit(c.begin(["d"]), "d", "d", weight=100)
    assert c.get("b") is None and all(c.get(k) for k in "acd")
    c.commit(c.begin(["big"]), "big", "big", weight=900)
    assert c.size_bytes <= 1000 and c.get("big") == "big"
    assert c.evictions >= 2


def test_recommit_replaces_and_keeps_accounting():
    c = cache()
    c.commit(c.begin(["k"]), "e", "v1", weight=10)
    c.commit(c.begin(["k2"]), "e", "v2", weight=20)
    assert c.get("e") == "v2" and c.size_bytes == 20
    c.invalidate(["k"])  # the old dependency no longer applies
    assert c.get("e") == "v2"
