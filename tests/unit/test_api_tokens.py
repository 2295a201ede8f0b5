"""api.tokens: signed bearer tokens carry profile id, scope and expiry; anything else is refused."""
import pytest

from api import tokens

NOW = 1_800_000_000.0


def test_a_viewer_token_round_trips():
    raw = tokens.issue(42, ttl=60, now=NOW)
    assert tokens.verify(raw, now=NOW) == tokens.Token(profile_id=42, ops=False, expires_at=int(NOW) + 60)


def test_an_ops_token_says_so():
    assert tokens.verify(tokens.issue(0, ops=True, ttl=60, now=NOW), now=NOW).ops


def test_expiry_is_exclusive():
    raw = tokens.issue(1, ttl=60, now=NOW)
    assert tokens.verify(raw, now=NOW + 59.9).profile_id == 1
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.verify(raw, now=NOW + 60)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda raw: raw.replace("42.", "43.", 1),  # another viewer
        lambda raw: raw.replace(".v.", ".o.", 1),  # promoted to ops
        lambda raw: raw[:-1] + ("A" if raw[-1] != "A" else "B"),  # signature
        lambda raw: raw.split(":")[0],  # no signature at all
        lambda raw: "",
    ],
)
def test_a_tampered_token_is_refused(tamper):
    with pytest.raises(tokens.TokenError, match="signature"):
        tokens.verify(tamper(tokens.issue(42, ttl=60, now=NOW)), now=NOW)


def test_a_token_signed_with_another_secret_is_refused(settings):
    raw = tokens.issue(42, ttl=60, now=NOW)
    settings.SECRET_KEY = "another-secret-another-secret-another-secret"
    with pytest.raises(tokens.TokenError, match="signature"):
        tokens.verify(raw, now=NOW)


def test_a_well_signed_but_malformed_payload_is_refused():
    from django.core import signing

    raw = signing.Signer(salt=tokens.SALT).sign("42.v")  # no expiry
    with pytest.raises(tokens.TokenError, match="malformed"):
        tokens.verify(raw, now=NOW)


def test_header_parsing():
    raw = tokens.issue(7, ttl=3600)
    assert tokens.from_header(f"Bearer {raw}").profile_id == 7
    assert tokens.from_header(f"bearer {raw}").profile_id == 7  # the scheme is case-insensitive
    for bad in (None, "", "Bearer", "Bearer   ", f"Basic {raw}", raw):
        with pytest.raises(tokens.TokenError):
            tokens.from_header(bad)
