"""ops.scope.parse under hypothesis: any JSON is a Scope or a BadScope (nothing else escapes);
a parsed scope round-trips through its dict and JSON; and nothing outside the grammar passes."""
import re
from datetime import date

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ops.scope import KEYS, MAX_ITEMS, BadScope, Scope, parse

EXAMPLES = settings(max_examples=500, deadline=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
codes = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", fullmatch=True)
near_codes = st.sampled_from(["", " EU", "EU ", "EU:W", "EU{x}", "EU*", "é", "x" * 33, "-EU", ".EU", "EU\n"])
days = st.dates().map(date.isoformat)
near_days = st.sampled_from(["2026-02-30", "2026-1-01", "２０２６-01-01", "2026-01-01T00:00", "20260101", "2026-13-01",
                             " 2026-01-01", "0000-01-01"])
ids = st.integers(min_value=1, max_value=2**63 - 1)
near_ids = st.sampled_from([0, -1, 2**63, True, False, 1.0, 1.5, "1", None])
fields = {
    "regions": st.lists(st.one_of(codes, near_codes, json_values), min_size=0, max_size=4),
    "profiles": st.lists(st.one_of(ids, near_ids, json_values), min_size=0, max_size=4),
    "epg_dates": st.lists(st.one_of(days, near_days, json_values), min_size=0, max_size=4),
    "all": st.one_of(st.just(True), json_values),
}
docs = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={**fields, "extra": json_values}),
    st.fixed_dictionaries({}, optional={k: v for k, v in fields.items() if k != "all"}),
)


def in_grammar(scope: Scope) -> bool:
    """Written apart from ops.scope: what an accepted scope may hold."""
    def real_day(d):
        try:
            return re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", d, re.ASCII) and date.fromisoformat(d)
        except ValueError:
            return False

    return (
        all(isinstance(c, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", c, re.ASCII) for c in scope.regions)
        and all(type(p) is int and 0 < p < 2**63 for p in scope.profiles)
        and all(isinstance(d, str) and real_day(d) for d in scope.epg_dates)
        and (not scope.all or not (scope.regions or scope.profiles or scope.epg_dates))
    )


@EXAMPLES
@given(docs)
@example({"profiles": [True]})
@example({"regions": ["EU\n"]})
@example({"epg_dates": ["２０２６-01-01"]})
@example({"all": True, "regions": []})
@example({"regions": [["EU"]]})
def test_any_document_is_a_scope_in_the_grammar_or_a_bad_scope(doc):
    try:
        scope = parse(doc)
    except BadScope as exc:
        message = str(exc)
    else:
        message = None
    if message is not None:
        assert message and "\n" not in message and len(message) < 400  # one line: a 400's message
        return
    assert in_grammar(scope)
    assert isinstance(doc, dict) and set(doc) <= set(KEYS)
    # Nothing given is lost: every listed value is in the scope (once).
    for name in ("regions", "profiles", "epg_dates"):
        assert set(getattr(scope, name)) == set(doc.get(name, ()))
        assert list(getattr(scope, name)) == sorted(set(getattr(scope, name)))


@EXAMPLES
@given(st.one_of(
    st.just({"all": True}),
    st.fixed_dictionaries({}, optional={
        "regions": st.lists(codes, min_size=1, max_size=5),
        "profiles": st.lists(ids, min_size=1, max_size=5),
        "epg_dates": st.lists(days, min_size=1, max_size=5),
    }).filter(bool),
), st.randoms())
def test_a_scope_round_trips_and_its_key_ignores_order_and_repeats(doc, rnd):
    scope = parse(doc)
    assert parse(scope.as_dict()) == scope
    assert parse(orjson.loads(orjson.dumps(scope.as_dict()))) == scope
    shuffled = {k: (rnd.sample(v, len(v)) + v[:1] if isinstance(v, list) else v) for k, v in doc.items()}
    assert parse(shuffled).key == scope.key


def test_a_list_longer_than_the_limit_is_refused():
    assert parse({"profiles": list(range(1, MAX_ITEMS + 1))}).profiles[-1] == MAX_ITEMS
    with pytest.raises(BadScope, match="1 to 10000"):
        parse({"profiles": list(range(1, MAX_ITEMS + 2))})
