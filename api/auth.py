"""Bearer-token authentication for the views: signature checks memoised, expiry checked always."""
from __future__ import annotations

import time

from django.http import HttpResponse

from . import tokens
from .errors import error

# Verified tokens by their exact text. Only tokens with a valid signature get in, so the
# memo cannot be filled with junk; it is simply emptied when full.
MEMO_SIZE = 50_000
_memo: dict[str, tokens.Token] = {}


def _unauthorized(message: str) -> HttpResponse:
    return error(401, "unauthorized", message, WWW_Authenticate="Bearer")


def authenticate(request, *, ops: bool) -> tokens.Token | HttpResponse:
    """The request's token, or the 401/403 JSON response to send instead."""
    header = request.META.get("HTTP_AUTHORIZATION")
    token = _memo.get(header) if header else None
    if token is None:
        try:
            token = tokens.from_header(header)
        except tokens.TokenError as exc:
            return _unauthorized(str(exc))
        if len(_memo) >= MEMO_SIZE:
            _memo.clear()
        _memo[header] = token
    elif token.expires_at <= time.time():
        return _unauthorized("token has expired")
    if token.ops != ops:
        if ops:
            return error(403, "forbidden", "this route needs an ops token")
        return error(403, "forbidden", "ops tokens cannot read viewer routes; use the viewer's own token")
    return token
