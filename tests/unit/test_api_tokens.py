"""api.tokens and api.auth: signed bearer tokens carry profile id, scope, expiry and generation;
anything else is refused, and what is remembered of them is bounded."""
from types import SimpleNamespace

import orjson
import pytest
from django.core import signing

from api import auth, tokens

NOW = 1_800_000_000.0


def sign(payload: str, **signer) -> str:
    from django.conf import settings

    return signing.Signer(key=signer.get("key", settings.PREWARM_TOKEN_KEY), salt=tokens.SALT).sign(payload)


def test_a_viewer_token_round_trips():
    raw = tokens.issue(42, ttl=60, now=NOW)
    assert tokens.verify(raw, now=NOW) == tokens.Token(profile_id=42, ops=False, expires_at=int(NOW) + 60,
                                                       generation=1)


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
    ],
)
def test_a_tampered_token_is_refused(tamper):
    with pytest.raises(tokens.TokenError, match="signature"):
        tokens.verify(tamper(tokens.issue(42, ttl=60, now=NOW)), now=NOW)


def test_tokens_have_their_own_key(settings):
    raw = tokens.issue(42, ttl=60, now=NOW)
    settings.SECRET_KEY = "another-secret-another-secret-another-secret"
    assert tokens.verify(raw, now=NOW).profile_id == 42  # sessions' key rotated: tokens live on
    settings.PREWARM_TOKEN_KEY = "another-token-key-another-token-key"
    with pytest.raises(tokens.TokenError, match="signature"):
        tokens.verify(raw, now=NOW)
    # Signed with SECRET_KEY itself (the old scheme) is not a token either.
    settings.SECRET_KEY = settings.PREWARM_TOKEN_KEY
    settings.PREWARM_TOKEN_KEY = "a-derived-key-a-derived-key-a-derived-key"
    with pytest.raises(tokens.TokenError, match="signature"):
        tokens.verify(sign(f"42.v.{int(NOW) + 60}.g1", key=settings.SECRET_KEY), now=NOW)


def test_the_default_token_key_is_derived_from_the_secret_under_its_own_salt():
    from django.conf import settings

    assert settings.PREWARM_TOKEN_KEY not in ("", settings.SECRET_KEY)
    assert len(settings.PREWARM_TOKEN_KEY) == 64


def test_raising_the_generation_revokes_earlier_tokens(settings):
    old = tokens.issue(42, ttl=60, now=NOW)
    settings.PREWARM_TOKEN_GENERATION = 2
    with pytest.raises(tokens.TokenError, match="revoked"):
        tokens.verify(old, now=NOW)
    new = tokens.issue(42, ttl=60, now=NOW)
    assert tokens.verify(new, now=NOW).generation == 2
    settings.PREWARM_TOKEN_GENERATION = 1  # a host not yet raised accepts the newer token
    assert tokens.verify(new, now=NOW).profile_id == 42


@pytest.mark.parametrize(
    "payload",
    [
        "42.v",  # no expiry
        "42.v.{exp}",  # no generation
        "+42.v.{exp}.g1", "42.v.+{exp}.g1", "4_2.v.{exp}.g1", "042.v.{exp}.g1", "-1.v.{exp}.g1",
        "\u0664\u0662.v.{exp}.g1",  # Arabic-Indic digits: int() takes them
        "42.x.{exp}.g1", "42.V.{exp}.g1", "42..{exp}.g1", "42.vo.{exp}.g1",  # unknown scopes
        "42.v.{exp}.g+1", "42.v.{exp}.1", "42.v.{exp}.g1.", " 42.v.{exp}.g1", "42.v.{exp}.g1\n",
        "42:v:{exp}:g1", "42,v,{exp},g1",  # wrong separators
    ],
)
def test_a_well_signed_but_malformed_payload_is_refused(payload):
    raw = sign(payload.format(exp=int(NOW) + 60))
    with pytest.raises(tokens.TokenError, match="malformed|signature"):
        tokens.verify(raw, now=NOW)


@pytest.mark.parametrize("raw", ["", "é" * 10, "a b", "x" * (tokens.MAX_TOKEN_LENGTH + 1), "42.v.1.g1:ab\x00"])
def test_junk_is_refused_before_the_signature_is_computed(raw, monkeypatch):
    monkeypatch.setattr(tokens, "_signer", lambda: pytest.fail("signature computed for junk"))
    with pytest.raises(tokens.TokenError, match="malformed"):
        tokens.verify(raw, now=NOW)


def test_lifetimes_are_capped_short_for_ops():
    assert tokens.issue(1, ttl=tokens.MAX_TTL_VIEWER, now=NOW)
    assert tokens.issue(1, ops=True, ttl=tokens.MAX_TTL_OPS, now=NOW)
    for ops, ttl in ((False, tokens.MAX_TTL_VIEWER + 1), (True, tokens.MAX_TTL_OPS + 1), (False, 0),
                     (True, 100 * 365 * 86400)):
        with pytest.raises(ValueError, match="lives 1 to"):
            tokens.issue(1, ops=ops, ttl=ttl, now=NOW)


def test_a_token_signed_for_longer_than_the_cap_is_refused():
    raw = sign(f"0.o.{int(NOW) + 1000 * 86400}.g1")
    with pytest.raises(tokens.TokenError, match="longest lifetime"):
        tokens.verify(raw, now=NOW)


def test_header_parsing():
    raw = tokens.issue(7, ttl=3600)
    assert tokens.from_header(f"Bearer {raw}").profile_id == 7
    assert tokens.from_header(f"bearer {raw}").profile_id == 7  # the scheme is case-insensitive
    assert tokens.bearer(f"Bearer   {raw}  ") == raw
    for bad in (None, "", "Bearer", "Bearer   ", f"Basic {raw}", raw, f"Bearer\t{raw}", f"Bearer:{raw}"):
        with pytest.raises(tokens.TokenError):
            tokens.from_header(bad)


# -- api.auth ---------------------------------------------------------------------------


@pytest.fixture
def memo():
    auth._memo.clear()
    yield auth._memo
    auth._memo.clear()


def authenticate(header, ops=False):
    return auth.authenticate(SimpleNamespace(META={"HTTP_AUTHORIZATION": header}), ops=ops)


def test_padded_copies_of_a_token_are_one_memo_entry(memo):
    """Issue 13: 300 padded copies of one header grew a web process by ~34 MB."""
    raw = tokens.issue(7, ttl=3600)
    for pad in range(tokens.MAX_HEADER_LENGTH - len(f"Bearer {raw}") + 1):
        assert authenticate(f"Bearer {raw}{' ' * pad}").profile_id == 7
        assert authenticate(f"Bearer {' ' * pad}{raw}").profile_id == 7
    assert len(memo) == 1


def test_the_memo_is_bounded_in_bytes(monkeypatch, memo):
    monkeypatch.setattr(memo, "max_bytes", 10 * (memo.ENTRY_OVERHEAD + 100))
    for pk in range(100):
        assert authenticate(f"Bearer {tokens.issue(pk, ttl=3600)}").profile_id == pk
        assert memo.size_bytes <= memo.max_bytes
    assert 0 < len(memo) <= 10


def test_an_oversized_authorization_header_is_refused_before_any_parsing(monkeypatch, memo):
    monkeypatch.setattr(tokens, "verify", lambda *a, **k: pytest.fail("parsed an oversized header"))
    raw = tokens.issue(7, ttl=3600)
    for header in (f"Bearer {raw}" + " " * tokens.MAX_HEADER_LENGTH, "Bearer " + "A" * 1_000_000):
        response = authenticate(header)
        assert response.status_code == 401 and response["Content-Type"] == "application/json"
        assert orjson.loads(response.content)["error"] == {"code": "unauthorized",
                                                           "message": "Authorization header is too long"}
    assert len(memo) == 0


def test_an_expired_token_in_the_memo_is_refused(memo, monkeypatch):
    import time

    raw = tokens.issue(7, ttl=60)
    assert authenticate(f"Bearer {raw}").profile_id == 7
    later = time.time() + 61
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: later))
    assert authenticate(f"Bearer {raw}").status_code == 401
