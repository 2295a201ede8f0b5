"""Signed bearer tokens: profile id, scope, expiry and generation, checked without a database hit."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

SALT = "prewarm.api.token"
SCOPE_VIEWER = "v"
SCOPE_OPS = "o"
# Longest lifetimes (s): an ops token starts warm-ups of everything and reads the servers'
# state, so it is short-lived; a viewer token reads one viewer's data.
MAX_TTL_OPS = 24 * 3600
MAX_TTL_VIEWER = 30 * 24 * 3600
# A token is ~90 characters; anything much longer is refused before any work is done on it.
MAX_TOKEN_LENGTH = 200
MAX_HEADER_LENGTH = MAX_TOKEN_LENGTH + 20
# Profile ids are Postgres bigints; the payload's 19 digits reach past them, and an id there
# names no profile (its key and its query would fail: a 500, not a 401).
MAX_PROFILE_ID = 2**63
# Clocks of the host that issued a token and the one checking it may differ this much.
CLOCK_SLACK = 300

# "<profile id>.<scope>.<expires at>.g<generation>": ASCII digits only, no sign, no
# underscore, no leading zero (int() would take "+5", "5_0" and Unicode digits).
_PAYLOAD = re.compile(r"(0|[1-9][0-9]{0,18})\.([vo])\.([1-9][0-9]{0,11})\.g(0|[1-9][0-9]{0,8})")
# The payload's characters, Signer's ':' and its URL-safe base64 signature.
_TOKEN = re.compile(r"[0-9A-Za-z._:-]+")


class TokenError(Exception):
    """The token is missing, malformed, tampered with, revoked or expired."""


@dataclass(frozen=True, slots=True)
class Token:
    profile_id: int
    ops: bool
    expires_at: int
    generation: int


def max_ttl(*, ops: bool) -> int:
    return MAX_TTL_OPS if ops else MAX_TTL_VIEWER


def _signer() -> signing.Signer:
    # Its own key (PREWARM_TOKEN_KEY): rotating it revokes tokens and nothing else.
    return signing.Signer(key=settings.PREWARM_TOKEN_KEY, salt=SALT)


def issue(profile_id: int, *, ops: bool = False, ttl: int, now: float | None = None) -> str:
    if not 0 < ttl <= max_ttl(ops=ops):
        raise ValueError(f"a{'n ops' if ops else ' viewer'} token lives 1 to {max_ttl(ops=ops)} s, not {ttl}")
    if not 0 <= profile_id < MAX_PROFILE_ID:
        raise ValueError(f"a profile id is 0 to {MAX_PROFILE_ID - 1}, not {profile_id}")
    expires_at = int((now if now is not None else time.time()) + ttl)
    scope = SCOPE_OPS if ops else SCOPE_VIEWER
    return _signer().sign(f"{profile_id}.{scope}.{expires_at}.g{settings.PREWARM_TOKEN_GENERATION}")


def verify(raw: str, now: float | None = None) -> Token:
    if len(raw) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(raw):
        raise TokenError("token is malformed")
    try:
        payload = _signer().unsign(raw)
    except signing.BadSignature:
        raise TokenError("token signature is invalid") from None
    match = _PAYLOAD.fullmatch(payload)
    if match is None:
        raise TokenError("token is malformed")
    pid, scope, exp, generation = match.groups()
    token = Token(int(pid), scope == SCOPE_OPS, int(exp), int(generation))
    if token.profile_id >= MAX_PROFILE_ID:
        raise TokenError("token is malformed")
    if token.generation < settings.PREWARM_TOKEN_GENERATION:
        raise TokenError("token has been revoked")
    now = now if now is not None else time.time()
    if token.expires_at <= now:
        raise TokenError("token has expired")
    if token.expires_at - now > max_ttl(ops=token.ops) + CLOCK_SLACK:
        raise TokenError("token outlives the longest lifetime allowed")
    return token


def bearer(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, without surrounding whitespace
    (so padded copies are one token); refused when too long, before any other work."""
    if not header:
        raise TokenError("missing Authorization: Bearer <token> header")
    if len(header) > MAX_HEADER_LENGTH:
        raise TokenError("Authorization header is too long")
    scheme, _, raw = header.partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw:
        raise TokenError("Authorization header must be 'Bearer <token>'")
    return raw


def from_header(header: str | None) -> Token:
    return verify(bearer(header))
