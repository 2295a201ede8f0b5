"""workers.relay.sort_rows: every id of a good outbox row reaches its kind's batch; a row (or
the part of one) that names no event is refused with its id and the reason, never dropped in
silence and never an error that would hold the outbox back."""
import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from workers import events, relay

EXAMPLES = settings(max_examples=1000, deadline=None)

good_ids = st.lists(st.integers(min_value=1, max_value=2**63 - 1), max_size=8)
bad_id = st.one_of(st.none(), st.integers(max_value=0), st.integers(min_value=2**63), st.booleans(),
                   st.floats(), st.text(max_size=5), st.lists(st.integers(min_value=1, max_value=9), max_size=2))
# What psycopg can hand back for `kind varchar(16), ids bigint[], extract(epoch ...)::float8`,
# and then some: the relay must not trust the column types either.
kinds = st.one_of(st.sampled_from(events.KINDS), st.text(max_size=16), st.none())
id_lists = st.one_of(good_ids, st.lists(st.one_of(st.integers(min_value=1, max_value=2**63 - 1), bad_id), max_size=8),
                     st.none(), st.text(max_size=4), st.integers())
created = st.one_of(st.floats(min_value=0, max_value=2e9), st.floats(), st.none())


@st.composite
def outboxes(draw):
    rows = draw(st.lists(st.tuples(kinds, id_lists, created), max_size=12))
    return [(n, kind, ids, at) for n, (kind, ids, at) in enumerate(rows, start=1)]


def is_good(i):
    return type(i) is int and 0 < i < 2**63


@EXAMPLES
@given(outboxes())
@example([(1, "profile", [5, None], 1.0), (2, "bogus", [1], 2.0), (3, "region", [[1, 2], [3, 4]], 3.0)])
@example([(1, "profile", None, 1.0)])
@example([(1, "channel", [7], math.inf), (2, "channel", [8], math.nan)])
def test_no_event_is_lost_and_no_bad_row_passes_unsaid(rows):
    batch = relay.sort_rows(rows)
    refused = dict(batch.refused)
    for row_id, kind, ids, _ in rows:
        valid_kind, listed = kind in events.KINDS, isinstance(ids, list)
        good = [i for i in ids if is_good(i)] if valid_kind and listed else []
        # Every good id of a good kind is in its kind's batch: no event lost.
        assert set(good) <= batch.ids.get(kind, set())
        # Anything else in the row is reported with the row's id.
        clean = valid_kind and listed and len(good) == len(ids)
        assert (row_id not in refused) == clean, (row_id, kind, ids, refused.get(row_id))
    # Only good ids of known kinds are ever sent.
    assert set(batch.ids) <= set(events.KINDS)
    assert all(is_good(i) for ids in batch.ids.values() for i in ids)
    for kind, ids in batch.ids.items():
        assert ids  # no empty task
        times = [at for _, k, i, at in rows if k == kind and isinstance(i, list) and any(map(is_good, i))
                 and isinstance(at, float) and math.isfinite(at)]
        assert batch.committed.get(kind) == (min(times) if times else None)


@EXAMPLES
@given(st.one_of(kinds, st.integers()), st.one_of(id_lists, st.lists(st.integers(), max_size=3)),
       st.one_of(st.none(), st.floats(), st.integers(), st.text(max_size=3)))
def test_a_rebuild_takes_only_arguments_that_are_an_event(kind, ids, not_before):
    """The broker takes JSON from anyone who reaches it: a task's kind and ids name keys."""
    why = events.bad_input(kind, ids, not_before)
    ok = (kind in events.KINDS and isinstance(ids, list) and all(is_good(i) for i in ids)
          and (not_before is None or (type(not_before) in (int, float) and 0 <= not_before < 2**40)))
    assert (why is None) == ok, why
