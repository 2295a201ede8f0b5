"""Bearer-token authentication for the views: signature checks memoised, expiry checked always."""
from __future__ import annotations

import time

from django.http import HttpResponse

from . import tokens
from .errors import error

BEARER = "Bearer "
_SKIP = len(BEARER)
_MAX_HEADER = tokens.MAX_HEADER_LENGTH


class TokenMemo:
    """Verified tokens by their text (whitespace stripped), bounded in count and in bytes.

    Only tokens with a valid signature get in, so junk cannot fill it; a viewer can still
    hold many valid ones, so it is emptied when either bound is reached (a refill costs one
    HMAC per token). Keyed by the parsed token: padded copies of a header are one entry.
    """

    # What an entry costs beyond its text: the key's str header, the Token, the dict slot.
    ENTRY_OVERHEAD = 250

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.size_bytes = 0
        self._tokens: dict[str, tokens.Token] = {}
        self.get = self._tokens.get  # the dict's own method: no Python call on every request

    def __len__(self) -> int:
        return len(self._tokens)

    def put(self, raw: str, token: tokens.Token) -> None:
        cost = len(raw) + self.ENTRY_OVERHEAD
        if len(self._tokens) >= self.max_entries or self.size_bytes + cost > self.max_bytes:
            self.clear()
        self._tokens[raw] = token
        self.size_bytes += cost

    def clear(self) -> None:
        self._tokens.clear()
        self.size_bytes = 0


MEMO_SIZE = 50_000
MEMO_BYTES = 16 * 1024 * 1024
_memo = TokenMemo(MEMO_SIZE, MEMO_BYTES)


def _unauthorized(message: str) -> HttpResponse:
    return error(401, "unauthorized", message, WWW_Authenticate="Bearer")


def _verified(header: str | None) -> tokens.Token | HttpResponse:
    try:
        raw = tokens.bearer(header)  # an oversized header is refused here, before any other work
        token = _memo.get(raw)
        if token is None:
            token = tokens.verify(raw)
            _memo.put(raw, token)
    except tokens.TokenError as exc:
        return _unauthorized(str(exc))
    return token


def remembered(header: str | None) -> tokens.Token | None:
    """The token of a header in the usual spelling whose signature this process verified
    before (a slice and a lookup); None for anything else. Expiry and scope are not checked."""
    if header and len(header) <= _MAX_HEADER and header.startswith(BEARER):
        return _memo.get(header[_SKIP:])
    return None


def authenticate(request, *, ops: bool) -> tokens.Token | HttpResponse:
    """The request's token, or the 401/403 JSON response to send instead."""
    header = request.META.get("HTTP_AUTHORIZATION")
    token = remembered(header)
    if token is None:  # not seen, or an unusual spelling: the parser decides
        token = _verified(header)
        if isinstance(token, HttpResponse):
            return token
    if token.expires_at <= time.time():
        return _unauthorized("token has expired")
    if token.ops != ops:
        if ops:
            return error(403, "forbidden", "this route needs an ops token")
        return error(403, "forbidden", "ops tokens cannot read viewer routes; use the viewer's own token")
    return token
