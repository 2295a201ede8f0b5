"""Signed bearer tokens: profile id, scope and expiry, checked without a database hit."""
from __future__ import annotations

import time
from dataclasses import dataclass

from django.core import signing

SALT = "prewarm.api.token"
SCOPE_VIEWER = "v"
SCOPE_OPS = "o"


class TokenError(Exception):
    """The token is missing, malformed, tampered with or expired."""


@dataclass(frozen=True, slots=True)
class Token:
    profile_id: int
    ops: bool
    expires_at: int


def issue(profile_id: int, *, ops: bool = False, ttl: int, now: float | None = None) -> str:
    expires_at = int((now if now is not None else time.time()) + ttl)
    payload = f"{profile_id}.{SCOPE_OPS if ops else SCOPE_VIEWER}.{expires_at}"
    return signing.Signer(salt=SALT).sign(payload)


def verify(raw: str, now: float | None = None) -> Token:
    try:
        payload = signing.Signer(salt=SALT).unsign(raw)
    except signing.BadSignature:
        raise TokenError("token signature is invalid") from None
    try:
        pid, scope, exp = payload.split(".")
        token = Token(int(pid), scope == SCOPE_OPS, int(exp))
    except ValueError:
        raise TokenError("token is malformed") from None
    if token.expires_at <= (now if now is not None else time.time()):
        raise TokenError("token has expired")
    return token


def from_header(header: str | None) -> Token:
    if not header:
        raise TokenError("missing Authorization: Bearer <token> header")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise TokenError("Authorization header must be 'Bearer <token>'")
    return verify(raw.strip())
