"""api.tokens under hypothesis: what is issued verifies to what was issued; anything else is a
TokenError (never another exception); and only the canonical payload grammar is accepted."""
import re
import string

import pytest
from django.conf import settings as django_settings
from django.core import signing
from hypothesis import example, given, settings
from hypothesis import strategies as st

from api import tokens

EXAMPLES = settings(max_examples=500, deadline=None)
NOW = 1_800_000_000
GENERATION = django_settings.PREWARM_TOKEN_GENERATION


def sign(payload: str) -> str:
    return signing.Signer(key=django_settings.PREWARM_TOKEN_KEY, salt=tokens.SALT).sign(payload)


@EXAMPLES
@given(st.integers(min_value=0, max_value=2**63 - 1), st.booleans(), st.data())
@example(2**63 - 1, False, None)
def test_an_issued_token_verifies_to_what_was_issued_until_it_expires(profile_id, ops, data):
    ttl = data.draw(st.integers(min_value=1, max_value=tokens.max_ttl(ops=ops))) if data else 1
    raw = tokens.issue(profile_id, ops=ops, ttl=ttl, now=NOW)
    assert tokens.verify(raw, now=NOW) == tokens.Token(profile_id, ops, NOW + ttl, GENERATION)
    assert tokens.bearer(f"Bearer  {raw} \t") == raw
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.verify(raw, now=NOW + ttl)


@EXAMPLES
@given(st.integers(min_value=2**63, max_value=10**20))
@example(9_999_999_999_999_999_999)  # 19 digits: the payload grammar's longest id
def test_no_token_names_an_id_beyond_bigint(profile_id):
    """Every profile id is a Postgres bigint: one beyond it names no profile and no key."""
    with pytest.raises(ValueError):
        tokens.issue(profile_id, ttl=60, now=NOW)
    with pytest.raises(tokens.TokenError):
        tokens.verify(sign(f"{profile_id}.v.{NOW + 60}.g{GENERATION}"), now=NOW)


TOKEN_CHARS = string.ascii_letters + string.digits + "._:-"


@EXAMPLES
@given(st.one_of(st.text(), st.text(TOKEN_CHARS), st.binary().map(lambda b: b.decode("latin-1")),
                 st.from_regex(r"[0-9]{1,20}\.[vo]\.[0-9]{1,12}\.g[0-9]{1,9}:[A-Za-z0-9_-]{20,60}", fullmatch=True)))
def test_anything_not_signed_by_us_is_a_token_error(raw):
    with pytest.raises(tokens.TokenError):
        tokens.verify(raw, now=NOW)


def digits(low, high):
    return st.integers(min_value=low, max_value=high).map(str)


# Near misses of each payload field: signs, underscores, Unicode digits, leading zeros, blanks.
NEAR = ["", "+5", "-5", "5_0", "٥", "５", "05", "00", " 5", "5 ", "5.0", "0x5", "1e3"]
ids = st.one_of(digits(0, 2**64), st.sampled_from(NEAR), st.text(max_size=4))
scopes = st.one_of(st.sampled_from(["v", "o"]), st.text(max_size=2))
expiries = st.one_of(digits(NOW - 10, NOW + 40 * 24 * 3600), st.sampled_from(NEAR), st.text(max_size=4))
generations = st.one_of(digits(0, GENERATION + 2), st.sampled_from(NEAR), st.text(max_size=3))
separators = st.sampled_from([".", ".", ".", ":", "", ".."])


@EXAMPLES
@given(ids, separators, scopes, separators, expiries, separators, st.sampled_from(["g", "G", "", "gg"]), generations)
@example("+5", ".", "v", ".", str(NOW + 60), ".", "g", str(GENERATION))
@example("5_0", ".", "v", ".", str(NOW + 60), ".", "g", str(GENERATION))
@example("٥", ".", "v", ".", str(NOW + 60), ".", "g", str(GENERATION))
@example("5", ".", "x", ".", str(NOW + 60), ".", "g", str(GENERATION))
def test_only_a_canonical_payload_is_accepted(pid, s1, scope, s2, exp, s3, g, generation):
    """Signed with our key (so only the parser stands in the way): a payload is accepted only
    when it is exactly what issue() would write for the token it parses to."""
    payload = f"{pid}{s1}{scope}{s2}{exp}{s3}{g}{generation}"
    try:
        token = tokens.verify(sign(payload), now=NOW)
    except tokens.TokenError:
        return
    assert payload == f"{token.profile_id}.{'o' if token.ops else 'v'}.{token.expires_at}.g{token.generation}"
    assert re.fullmatch(r"(0|[1-9][0-9]*)\.[vo]\.[1-9][0-9]*\.g(0|[1-9][0-9]*)", payload, re.ASCII)
    assert 0 <= token.profile_id < 2**63 and token.generation >= GENERATION
    assert NOW < token.expires_at <= NOW + tokens.max_ttl(ops=token.ops) + tokens.CLOCK_SLACK


@EXAMPLES
@given(st.one_of(st.none(), st.text(), st.text().map(lambda t: "Bearer " + t),
                 st.text(" \t\u00a0\u2003").map(lambda pad: f"Bearer {pad}abc{pad}")))
@example("Bearer " + "x" * 300)
def test_a_header_gives_a_stripped_token_or_a_token_error(header):
    try:
        raw = tokens.bearer(header)
    except tokens.TokenError:
        return
    assert raw and raw == raw.strip() and len(header) <= tokens.MAX_HEADER_LENGTH
    assert header.partition(" ")[0].lower() == "bearer"
