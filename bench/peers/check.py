"""Do the peers answer with the product's bytes? `same_bytes` compares every peer with `naive`
(status and body) for the EPG of each day, an allowed and a refused playback and an unknown
channel, per viewer, and the floors. `python -m bench run` calls it before it measures."""
from __future__ import annotations

import http.client
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

REFERENCE = "naive"
UNKNOWN_CHANNEL = "no-such-channel"
FLOORS = ("/api/bench/floor-2k", "/api/bench/floor-epg", "/healthz")
TIMEOUT_S = 30


def fetch(base: str, path: str, token: str | None = None, method: str = "GET",
          body: bytes | None = None) -> tuple[int, bytes]:
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=TIMEOUT_S)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def epg_path(day: str | None) -> str:
    return "/api/v1/me/epg" + (f"?date={day}" if day else "")


def _probes(viewers: Iterable[tuple[str, str, str]], days: Iterable[str | None]) -> list[tuple[str, str, str | None]]:
    """(what, path, token) of every request compared."""
    out = [(path, path, None) for path in FLOORS]
    for n, (token, allowed, refused) in enumerate(viewers):
        out += [(f"viewer {n} EPG {day or '(no date)'}", epg_path(day), token) for day in days]
        out += [
            (f"viewer {n} playback allowed {allowed}", f"/api/v1/me/playback/{allowed}", token),
            (f"viewer {n} playback refused {refused}", f"/api/v1/me/playback/{refused}", token),
            (f"viewer {n} playback unknown", f"/api/v1/me/playback/{UNKNOWN_CHANNEL}", token),
        ]
    return out


def _describe(peer: str, what: str, mine: tuple[int, bytes], ref: tuple[int, bytes]) -> str:
    (status, body), (ref_status, ref_body) = mine, ref
    if status != ref_status:
        return f"{peer}: {what}: status {status}, {REFERENCE} {ref_status}; body {body[:160]!r}"
    at = next((i for i, (a, b) in enumerate(zip(body, ref_body)) if a != b), min(len(body), len(ref_body)))
    return (f"{peer}: {what}: body differs at byte {at} ({len(body)} vs {len(ref_body)} bytes): "
            f"{body[max(0, at - 40):at + 60]!r} vs {ref_body[max(0, at - 40):at + 60]!r}")


def same_bytes(servers: Mapping[str, str], viewers: list[tuple[str, str, str]], days: list[str]) -> list[str]:
    """Mismatch descriptions (status, body) of every peer against `naive`: EPG on each day
    (None in `days`: no ?date=), playback allowed, refused and an unknown channel, the floors.
    `servers` maps peer -> base URL and must hold `naive`; an empty list means all agree."""
    if REFERENCE not in servers:
        raise ValueError(f"same_bytes compares with {REFERENCE!r}: start it too")
    problems = []
    for what, path, token in _probes(viewers, days):
        ref = fetch(servers[REFERENCE], path, token)
        if ref[0] >= 500:
            problems.append(f"{REFERENCE}: {what}: status {ref[0]}: {ref[1][:160]!r}")
        for peer, base in servers.items():
            if peer == REFERENCE:
                continue
            mine = fetch(base, path, token)
            if mine != ref:
                problems.append(_describe(peer, what, mine, ref))
    return problems
