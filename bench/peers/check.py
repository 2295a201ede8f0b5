"""Do the peers answer with the product's bytes? And which of them see each kind of write?

`same_bytes` compares every peer with `naive` (status and body) for the EPG of each day, an
allowed and a refused playback and an unknown channel, per viewer, and the floors. `python
-m bench.peers.check` starts every peer's server on the configured database (and an
invalidation worker and relay for prewarm), runs it, then writes through each peer's own
server with each writer kind and reports when that peer served the new title.
"""
from __future__ import annotations

import argparse
import http.client
import os
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import orjson

from . import DEFAULT_PREFIX, PEERS, REDIS_DB, redis_scope

REFERENCE = "naive"
UNKNOWN_CHANNEL = "no-such-channel"
FLOORS = ("/api/bench/floor-2k", "/api/bench/floor-epg", "/healthz")
WRITERS = ("orm_save", "queryset_update", "raw_sql_django", "bulk_create", "psql_external")
ROUTE_WRITERS = WRITERS[:4]  # POST /api/bench/write; psql_external is psql from outside Django
TIMEOUT_S = 30
FRESH_TIMEOUT_S = 15.0
POLL_S = 0.05


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


# -- freshness ---------------------------------------------------------------------------


def psql_update(database_url: str, programme: int, title: str) -> None:
    """The write no Django process sees: psql, as another service or an operator would."""
    import subprocess

    from tools import devstack

    # Read from stdin, where psql interpolates :'title' as a quoted literal (-c would not).
    subprocess.run([devstack.psql_binary(), database_url, "-v", "ON_ERROR_STOP=1", "-q", "-v", f"title={title}",
                    "-v", f"id={int(programme)}"], input="UPDATE core_programme SET title = :'title' WHERE id = :id;\n",
                   check=True, capture_output=True, text=True)


def write(base: str, doc: dict) -> dict:
    status, body = fetch(base, "/api/bench/write", method="POST", body=orjson.dumps(doc))
    if status != 200:
        raise RuntimeError(f"write {doc} -> {status}: {body[:200]!r}")
    return orjson.loads(body)


def seen_after(base: str, token: str, title: str, since: float, timeout: float = FRESH_TIMEOUT_S) -> float | None:
    """Seconds from `since` (the write's commit was answered) until the viewer's guide shows
    `title`, or None after `timeout`."""
    needle = orjson.dumps(title)
    while True:
        status, body = fetch(base, epg_path(None), token)
        if status == 200 and needle in body:
            return time.monotonic() - since
        if time.monotonic() - since > timeout:
            return None
        time.sleep(POLL_S)


def programme_ids(epg: bytes) -> list[tuple[int, datetime, datetime]]:
    """(id, starts_at, ends_at) of the programmes in an EPG body, from Postgres (the body has no ids)."""
    from core.models import Programme

    shown = {(c["id"], datetime.fromisoformat(p["start"])) for c in orjson.loads(epg)["channels"]
             for p in c["programmes"]}
    rows = Programme.objects.filter(channel_id__in={cid for cid, _ in shown}).values_list(
        "id", "channel_id", "starts_at", "ends_at")
    return sorted((pid, starts, ends) for pid, cid, starts, ends in rows if (cid, starts) in shown)


def freshness(servers: Mapping[str, str], token: str, timeout: float = FRESH_TIMEOUT_S,
              writers: Iterable[str] = WRITERS) -> dict[tuple[str, str], tuple[float | None, bool]]:
    """(peer, writer) -> (seconds from the write's answer until the end of the first guide
    request of that peer that showed the new title, or None after `timeout`; whether naive
    showed it right after). Each write goes through the peer's own server, after the peer
    served the viewer's guide once (so a caching peer holds it). The data is put back after."""
    from django.db import connection

    from core.models import Programme

    status, epg = fetch(servers[REFERENCE], epg_path(None), token)
    if status != 200:
        raise RuntimeError(f"no guide for the freshness viewer: {status}")
    rows = programme_ids(epg)
    channel = next(c["id"] for c in orjson.loads(epg)["channels"] if c["programmes"])
    stamp = datetime.now(UTC).strftime("%H%M%S")
    out = {}
    spare = iter(rows[len(rows) // 3:])  # programmes nobody wrote yet, one per write
    titles = dict(Programme.objects.filter(pk__in=[pid for pid, _, _ in rows]).values_list("id", "title"))
    changed: list[int] = []
    inserted: list[int] = []
    try:
        for peer, base in servers.items():
            for writer in writers:
                fetch(base, epg_path(None), token)
                title = f"Fresh {peer} {writer} {stamp}"
                pid, starts, ends = next(spare)
                if writer == "bulk_create":
                    # A minute inside today's guide, off the 5-minute grid: two programmes of a
                    # channel starting together have no defined order (nor in the product).
                    at = starts + (ends - starts) / 2 + timedelta(seconds=7)
                    doc = {"writer": writer, "channel": channel, "title": title, "starts_at": at.isoformat(),
                           "ends_at": (at + timedelta(minutes=1)).isoformat()}
                    inserted.append(write(base, doc)["id"])
                elif writer == "psql_external":
                    psql_update(os.environ["DATABASE_URL"], pid, title)
                    changed.append(pid)
                else:
                    write(base, {"writer": writer, "programme": pid, "title": title})
                    changed.append(pid)
                mine = seen_after(base, token, title, time.monotonic(), timeout)
                naive = seen_after(servers[REFERENCE], token, title, time.monotonic(), 0.0) is not None
                out[peer, writer] = (mine, naive)
                print(f"  {peer:13} {writer:16} {_secs(mine):>9}  (naive shows it: {'yes' if naive else 'NO'})",
                      flush=True)
    finally:
        with connection.cursor() as cur:  # the titles back and the new rows gone (triggers follow)
            for pid in changed:
                cur.execute("UPDATE core_programme SET title = %s WHERE id = %s", [titles[pid], pid])
            if inserted:
                cur.execute("DELETE FROM core_programme WHERE id = ANY(%s)", [inserted])
    return out


def _secs(s: float | None) -> str:
    return "never" if s is None else f"{s:.3f}s"


# -- a real run ----------------------------------------------------------------------------


def flush(peer: str, env: Mapping[str, str]) -> int:
    """Clear what the peer wrote under this bench's key prefix: in a caching peer's own db only
    the keys of this prefix (another run, on other data, may be using the db meanwhile)."""
    import redis

    url, prefix = redis_scope(peer, env)
    if prefix is None:
        if peer not in REDIS_DB:
            raise ValueError(f"refusing to flush the whole db of {peer}")
        prefix = env.get("PREWARM_KEY_PREFIX") or DEFAULT_PREFIX
    r = redis.Redis.from_url(url)
    gone = 0
    for key in r.scan_iter(match=f"{prefix}:*", count=10_000):
        gone += r.unlink(key)
    return gone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.check", description=__doc__)
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS))
    parser.add_argument("--viewers", type=int, default=5)
    parser.add_argument("--no-freshness", action="store_true")
    parser.add_argument("--fresh-timeout", type=float, default=FRESH_TIMEOUT_S)
    args = parser.parse_args(argv)
    peers = [REFERENCE, *[p for p in args.peers if p != REFERENCE]]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from bench import api as bench_api
    from bench import common

    for peer in peers:
        if peer in REDIS_DB or peer == "prewarm-cold":
            print(f"flushed {peer}: {flush(peer, env)} keys", flush=True)
    helpers, started, servers = [], [], {}
    try:
        if "prewarm" in peers and not args.no_freshness:
            helpers += [common.worker(env, concurrency=1, pool="solo", name="peer-worker"),
                        common.child("peer-relay", [sys.executable, "manage.py", "relay", "--poll", "0.5"], env,
                                     ready="caught up")]
        from .servers import PeerServer

        for peer in peers:
            server = PeerServer(peer, env)
            started.append(server)
            servers[peer] = server.base
            print(f"{peer}: {server.base} up in {server.started_s:.1f}s", flush=True)
        vs = [(v.token, v.allowed, v.refused) for v in bench_api.viewers(args.viewers)]
        today = datetime.now(UTC).date()
        days = [None, *[(today + timedelta(days=d)).isoformat() for d in (-1, 0, 1, 2, 5)]]
        t0 = time.monotonic()
        problems = same_bytes(servers, vs, days)
        # Twice: the second pass reads what the first one cached (hits, not builds).
        problems += same_bytes(servers, vs, days)
        print(f"same_bytes: {len(_probes(vs, days))} requests x {len(peers) - 1} peers x 2 passes in "
              f"{time.monotonic() - t0:.1f}s: {len(problems)} mismatches", flush=True)
        for p in problems:
            print("  " + p, flush=True)
        if not args.no_freshness:
            print(f"freshness (seconds until the writing peer serves the new title; {args.fresh_timeout:.0f}s max):")
            freshness(servers, vs[0][0], args.fresh_timeout)
        return 1 if problems else 0
    finally:
        for server in started:
            server.stop()
        for proc in helpers:
            common.stop(proc)


if __name__ == "__main__":
    sys.exit(main())
