"""API scenario: warm views against a constant-bytes floor and the naive EPG, under wrk.

Servers run bench.wsgi (the product app plus baseline routes) the way the Procfile runs the
product: granian, 2 WSGI workers, 1 blocking thread each; gunicorn sync is measured beside
it for the floor and playback. Requests rotate over K viewers' tokens so the profile reads
are not one hot key. Also: latency at half of each endpoint's max throughput, and what GC
tuning and the in-process profile cache each buy.
"""
from __future__ import annotations

import http.client
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from config import web
from tools import procs

from . import common

GUNICORN = [sys.executable, "-m", "gunicorn", "--worker-class", "sync", "--workers", "2"]
WARMUP_S = 2          # unrecorded load before each measurement: local caches, token memo, DB connections
CALIBRATE_S = 3       # a throttled run to learn the in-flight time before the half-load run
NAIVE_CONNECTIONS = 4  # the naive EPG serves ~20 req/s: more connections only queue
TIMEOUT_S = 10
TOKEN_TTL_S = 12 * 3600
SEED = 20261126
STABLE_S = 3600  # viewers picked keep their entitlement at least this long
ATTEMPTS = 3      # a measurement another job overlapped is taken again, this many times at most
ROUNDS = 2        # A/B comparisons alternate the two servers this many times, best of each kept
P99_TARGET_MS = 5.0
# What PREWARM_GC_TUNING is measured on: the floor, and the hot lane's three warm reads (#14).
GC_ENDPOINTS = ["floor 2 KB", "playback 200", "profile", "epg"]

FLOOR_2K = "/api/bench/floor-2k"
FLOOR_EPG = "/api/bench/floor-epg"
NAIVE_EPG = "/api/bench/naive-epg"
PROFILE = "/api/v1/me/profile"
EPG = "/api/v1/me/epg"
PLAYBACK = "/api/v1/me/playback/"


@dataclass(frozen=True, slots=True)
class Viewer:
    profile_id: int
    token: str
    allowed: str  # a channel this viewer may watch now
    refused: str  # one they may not


@dataclass(frozen=True, slots=True)
class Result:
    rps: float
    p50: float  # ms
    p99: float
    requests: int
    bad_status: int  # answers >= 400 (all of them for the refusal endpoint)
    socket_errors: int
    overlapped: bool  # another benchmark or test run was seen right after
    cdf: tuple[tuple[float, float], ...] = ()  # (percentile, ms) for latency plots


def viewers(k: int) -> list[Viewer]:
    """K random viewers (fixed seed) with a watchable and a refused channel each."""
    import orjson

    from api import tokens
    from core import keys
    from core.models import Profile
    from core.redis_conn import client

    ids = list(Profile.objects.values_list("id", flat=True))
    stable_until = time.time() + STABLE_S
    rng = random.Random(SEED)
    rng.shuffle(ids)
    out: list[Viewer] = []
    for start in range(0, len(ids), k):
        chunk = ids[start : start + k]
        pipe = client().pipeline(transaction=False)
        for pk in chunk:
            pipe.hmget(keys.profile_key(pk), "class", "valid_until")
        heads = pipe.execute()
        pipe = client().pipeline(transaction=False)
        for cid, _ in heads:
            pipe.hmget(keys.class_key(cid.decode()) if cid else "-", "data", "valid_until")
        for n, (pk, (_, p_until), (data, c_until)) in enumerate(zip(chunk, heads, pipe.execute())):
            # A viewer whose entitlement changes during the run (a subscription or licence
            # window closing) would turn its 200 into a 403 and force rebuilds: skip it.
            if not data or not _stable(p_until, stable_until) or not _stable(c_until, stable_until):
                continue
            cls = orjson.loads(data)
            if not cls["allowed"] or not cls["denied"]:
                continue
            refused = sorted(cls["denied"])
            token = tokens.issue(pk, ttl=TOKEN_TTL_S)
            out.append(Viewer(pk, token, cls["allowed"][n % len(cls["allowed"])], refused[n % len(refused)]))
            if len(out) == k:
                return out
    if not out:
        raise RuntimeError("no warm viewer with both a watchable and a refused channel: is the cache warm?")
    return out


def _stable(valid_until: bytes | None, until: float) -> bool:
    return not valid_until or float(valid_until) > until


class Server:
    """One bench.wsgi server on a free local port, stopped by its process group id."""

    def __init__(self, kind: str, env: dict[str, str], **overrides: str):
        self.kind = kind
        self.port = procs.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**env, "DJANGO_SETTINGS_MODULE": "bench.settings", **overrides}
        if kind == "granian":
            argv = web.argv("bench.wsgi:application", {**env, "HOST": "127.0.0.1", "PORT": str(self.port)})
        else:
            argv = [*GUNICORN, "--bind", f"127.0.0.1:{self.port}", "bench.wsgi:application"]
        # One log per configuration: two servers may be up at once (the on/off pairs).
        name = "-".join(["api", kind, *(f"{k.lower()}={v}" for k, v in sorted(overrides.items()))])
        self.child = common.child(name, argv, env)
        self.child.wait_http(self.base + "/healthz", timeout=60)

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def stop(self) -> None:
        common.stop(self.child)


def _lua_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lua_script(requests: list[tuple[str, str | None]], delay_ms: float | None) -> str:
    """Requests built once per entry in init() and sent round-robin; a throttle when delay_ms."""
    rows = ",\n".join(f"  {{{_lua_str(p)}, {_lua_str(t or '')}}}" for p, t in requests)
    script = f"""
local specs = {{
{rows}
}}
local built, n, i = {{}}, 0, 0
function init(args)
  for k, s in ipairs(specs) do
    local headers = {{}}
    if s[2] ~= "" then headers["Authorization"] = "Bearer " .. s[2] end
    built[k] = wrk.format("GET", s[1], headers)
  end
  n = #built
end
function request()
  i = i % n + 1
  return built[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  local cdf = {{}}
  for _, q in ipairs({{1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9}}) do
    cdf[#cdf + 1] = string.format("[%g,%d]", q, latency:percentile(q))
  end
  io.write("BENCHCDF [" .. table.concat(cdf, ",") .. "]\\n")
  io.write(string.format(
    "BENCHJSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"p50\\":%d,\\"p99\\":%d,"
    .. "\\"status\\":%d,\\"sockets\\":%d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""
    if delay_ms is not None:
        # wrk's delay() is whole milliseconds: dither between the two neighbours for the mean.
        script += f"""
local mean_delay = {delay_ms:.4f}
function delay()
  local base = math.floor(mean_delay)
  if math.random() < mean_delay - base then return base + 1 end
  return base
end
"""
    return script


def wrk(base: str, requests, connections: int, seconds: float, delay_ms: float | None = None,
        abort_if_busy: bool = False) -> Result | None:
    """One wrk run, watching for other benchmarks or test runs: with `abort_if_busy` it stops
    and answers None as soon as one shows up, else the result says it overlapped."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="prewarm-wrk-", delete=False) as f:
        f.write(lua_script(requests, delay_ms))
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            f"--timeout={TIMEOUT_S}s", "-s", f.name, base]
    overlapped = False
    try:
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            while proc.poll() is None:
                if common.busy():
                    overlapped = True
                    if abort_if_busy:
                        proc.terminate()
                        proc.communicate()
                        return None
                time.sleep(1)
            out, err = proc.communicate()
            if proc.returncode:
                raise RuntimeError(f"wrk failed ({proc.returncode}): {err.strip()}")
    finally:
        Path(f.name).unlink()
    line = next(x for x in out.splitlines() if x.startswith("BENCHJSON "))
    d = json.loads(line.split(" ", 1)[1])
    cdf_line = next((x for x in out.splitlines() if x.startswith("BENCHCDF ")), None)
    cdf = tuple((q, us / 1000) for q, us in json.loads(cdf_line.split(" ", 1)[1])) if cdf_line else ()
    return Result(d["requests"] / (d["duration_us"] / 1e6), d["p50"] / 1000, d["p99"] / 1000, d["requests"],
                  d["status"], d["sockets"], overlapped, cdf)


# --no-wait: measure while other jobs run (A/B alternation keeps a comparison fair anyway).
WAIT_QUIET = {"on": True}


def measure(server: Server, requests, connections: int, seconds: float, delay_ms: float | None = None,
            warmup: bool = True) -> Result:
    """A measurement on a quiet machine: taken again (ATTEMPTS at most) when another job starts during it."""
    for attempt in range(1, ATTEMPTS + 1):
        waited = common.wait_quiet() if WAIT_QUIET["on"] else 0.0
        if waited > 1:
            print(f"  (waited {waited:.0f}s for a quiet machine)", flush=True)
        if warmup:
            wrk(server.base, requests, connections, WARMUP_S, delay_ms)
        r = wrk(server.base, requests, connections, seconds, delay_ms,
                abort_if_busy=WAIT_QUIET["on"] and attempt < ATTEMPTS)
        if r is not None:
            return r
        print("  (another job started: measuring again)", flush=True)
    raise AssertionError("unreachable")


def at_rate(server: Server, requests, connections: int, target: float, seconds: float) -> Result:
    """Closed-loop load throttled to `target` req/s by a per-request think time (wrk delay())."""
    cycle_ms = 1000 * connections / target  # one connection's request-to-request period
    probe = measure(server, requests, connections, CALIBRATE_S, max(0.0, cycle_ms - 0.3))
    in_flight_ms = 1000 * connections / probe.rps - max(0.0, cycle_ms - 0.3)  # response time + timer slack
    return measure(server, requests, connections, seconds, max(0.0, cycle_ms - in_flight_ms), warmup=False)


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("wrk not found: apt-get install -y wrk", flush=True)
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=True)


def probe(server: Server, vs: list[Viewer]) -> dict:
    """Check every route answers as expected for every viewer (this also warms the entries);
    return the EPG body sizes and whether the naive EPG equals the warm one."""
    sizes, small = [], {}
    for v in vs:
        for name, path, want in (("profile", PROFILE, 200), ("playback", PLAYBACK + v.allowed, 200),
                                 ("refusal", PLAYBACK + v.refused, 403), ("epg", EPG, 200)):
            status, body = server.get(path, v.token)
            if status != want:
                raise RuntimeError(f"{path} for profile {v.profile_id}: {status} (wanted {want}): {body[:200]!r}")
            if name == "epg":
                sizes.append(len(body))
            else:
                small.setdefault(name, len(body))
    same = []
    for v in vs[:3]:
        warm = server.get(EPG, v.token)[1]
        status, naive = server.get(NAIVE_EPG, v.token)
        if status != 200:
            raise RuntimeError(f"naive EPG: {status}: {naive[:200]!r}")
        same.append(naive == warm)
    return {"epg_sizes": sizes, "small": small, "naive_same": same}


def run(args) -> None:
    if args.no_wait:
        WAIT_QUIET["on"] = False
    env = common.bench_env()
    common.setup(env, args.profiles)
    ensure_wrk()
    vs = viewers(args.tokens)
    c, s = args.connections, args.duration

    server = Server("granian", env)
    try:
        found = probe(server, vs)
    finally:
        server.stop()
    sizes = found["epg_sizes"]
    epg_bytes = round(statistics.fmean(sizes))
    env = {**env, "BENCH_FLOOR_EPG_BYTES": str(epg_bytes)}
    # Single-token runs use the viewer whose guide is closest to the mean size, so that
    # "epg, 1 token" and "floor EPG-size" send the same number of bytes.
    one = [vs[min(range(len(vs)), key=lambda i: abs(sizes[i] - epg_bytes))]]
    reqs = {
        "floor 2 KB": [(FLOOR_2K, None)],
        "floor EPG-size": [(FLOOR_EPG, None)],
        "profile": [(PROFILE, v.token) for v in vs],
        "playback 200": [(PLAYBACK + v.allowed, v.token) for v in vs],
        "playback 403": [(PLAYBACK + v.refused, v.token) for v in vs],
        "playback 200, 1 token": [(PLAYBACK + v.allowed, v.token) for v in one],
        "epg": [(EPG, v.token) for v in vs],
        "epg, 1 token": [(EPG, v.token) for v in one],
        "naive epg": [(NAIVE_EPG, v.token) for v in vs],
    }
    rows: list[tuple] = []
    notes: list[str] = []

    def floor_of(name: str) -> str:
        return "floor EPG-size" if "epg" in name else "floor 2 KB"

    def ratio_to(floor: float, rps: float, label: str) -> str:
        x = rps / floor
        return f"{x:.2f} of {label}" if x >= 0.1 else f"{x:.4f} of {label}"

    def row(server_name: str, config: str, name: str, conns: int, r: Result, ratio: str, load: str = "max"):
        tokens = "-" if name.startswith("floor") else len(reqs[name])
        rps = f"{r.rps:,.0f}" + (" *" if r.overlapped else "")
        rows.append((server_name, config, name, tokens, conns, load, rps, f"{r.p50:.2f}", f"{r.p99:.2f}", ratio))
        print(f"  {server_name:8} {config:18} {name:22} {load:9} {r.rps:>9,.0f} req/s  p50 {r.p50:6.2f}  "
              f"p99 {r.p99:6.2f} ms  {ratio}", flush=True)
        want_bad = r.requests if name == "playback 403" else 0
        if r.bad_status != want_bad or r.socket_errors:
            notes.append(f"{server_name} {config} {name} ({load}): {r.bad_status} answers >= 400 of {r.requests},"
                         f" {r.socket_errors} socket errors")

    def sweep(srv: Server, config: str, names: list[str]) -> dict[str, Result]:
        """Each endpoint at max throughput, ROUNDS passes over all of them, the best of each kept;
        ratios against this sweep's own floors."""
        out: dict[str, Result] = {}
        for _ in range(ROUNDS):
            for name in names:
                r = measure(srv, reqs[name], NAIVE_CONNECTIONS if name == "naive epg" else c, s)
                print(f"  {config}: {name}: {r.rps:,.0f} req/s", flush=True)
                if name not in out or r.rps > out[name].rps:
                    out[name] = r
        for name in names:
            conns, r = NAIVE_CONNECTIONS if name == "naive epg" else c, out[name]
            if name.startswith("floor"):
                ratio = "1.00 (floor)"
            else:
                ratio = ratio_to(out[floor_of(name)].rps, r.rps, floor_of(name))
            if name == "naive epg":
                ratio += f"; warm EPG {out['epg'].rps / r.rps:,.0f}x"
            row(srv.kind, config, name, conns, r, ratio, load=f"best of {ROUNDS}")
        return out

    def paired(a: tuple[Server, str], b: tuple[Server, str], names: list[str]) -> dict[tuple[str, str], Result]:
        """Two servers measured alternately (A B A B ...), the best of ROUNDS kept for each."""
        best: dict[tuple[str, str], Result] = {}
        for name in names:
            for _ in range(ROUNDS):
                for srv, config in (a, b):
                    r = measure(srv, reqs[name], c, s)
                    if (config, name) not in best or r.rps > best[(config, name)].rps:
                        best[(config, name)] = r
        return best

    main = Server("granian", env)
    try:
        # 1. granian as in the Procfile, product defaults: every endpoint at max, then at half of it.
        print(f"granian (default) on port {main.port}", flush=True)
        res = sweep(main, "default", ["floor 2 KB", "floor EPG-size", "profile", "playback 200", "playback 403",
                                      "playback 200, 1 token", "epg", "epg, 1 token", "naive epg"])
        print("half load", flush=True)
        for name in ("floor 2 KB", "profile", "playback 200", "playback 403", "epg"):
            r = at_rate(main, reqs[name], c, res[name].rps / 2, s)
            ok = "yes" if r.p99 <= P99_TARGET_MS else "NO"
            row("granian", "default", name, c, r, f"p99 <= {P99_TARGET_MS:.0f} ms: {ok}", load="50%")

        # 2. What the GC tuning buys: the same server with and without, alternately.
        # (off by default: it measured no better here, see the report)
        on = Server("granian", env, PREWARM_GC_TUNING="1")
        try:
            print(f"GC tuning on/off, ports {on.port}/{main.port}", flush=True)
            gc = paired((on, "GC_TUNING=1"), (main, "GC_TUNING=0"), GC_ENDPOINTS)
        finally:
            on.stop()
        for config in ("GC_TUNING=1", "GC_TUNING=0"):
            floor = gc[(config, "floor 2 KB")].rps
            for name in GC_ENDPOINTS:
                r = gc[(config, name)]
                row("granian", config, name, c, r, ratio_to(floor, r.rps, "floor 2 KB") if name != "floor 2 KB"
                    else "1.00 (floor)", load=f"best of {ROUNDS}")

        # 3. What the in-process profile cache buys (off: one Redis round trip per request).
        off = Server("granian", env, PREWARM_API_LOCAL_PROFILES="0")
        try:
            print(f"local profiles on/off, ports {main.port}/{off.port}", flush=True)
            local = paired((main, "LOCAL_PROFILES=1"), (off, "LOCAL_PROFILES=0"), ["profile", "playback 200", "epg"])
        finally:
            off.stop()
        for config in ("LOCAL_PROFILES=1", "LOCAL_PROFILES=0"):
            for name in ("profile", "playback 200", "epg"):
                r = local[(config, name)]
                row("granian", config, name, c, r, ratio_to(res[floor_of(name)].rps, r.rps, floor_of(name)),
                    load=f"best of {ROUNDS}")
    finally:
        main.stop()

    # 4. gunicorn sync (a new connection per request), to back the choice of server.
    guni = Server("gunicorn", env)
    try:
        print(f"gunicorn (sync, 2 workers) on port {guni.port}", flush=True)
        gres = sweep(guni, "sync, 2 workers", ["floor 2 KB", "playback 200"])
    finally:
        guni.stop()

    def delta(a: Result, b: Result) -> str:
        return f"{b.rps:,.0f} -> {a.rps:,.0f} req/s ({a.rps / b.rps - 1:+.0%}, p99 {b.p99:.2f} -> {a.p99:.2f} ms)"

    notes += [
        f"warm EPG vs naive EPG: {res['epg'].rps / res['naive epg'].rps:,.0f}x the throughput (target >= 100x)",
        "GC tuning off -> on: " + "; ".join(
            f"{n} {delta(gc[('GC_TUNING=1', n)], gc[('GC_TUNING=0', n)])}" for n in GC_ENDPOINTS),
        "local profiles off -> on: " + "; ".join(
            f"{n} {delta(local[('LOCAL_PROFILES=1', n)], local[('LOCAL_PROFILES=0', n)])}"
            for n in ("profile", "playback 200", "epg")),
        f"gunicorn sync: floor {gres['floor 2 KB'].rps / res['floor 2 KB'].rps:.0%} of granian's, playback "
        f"{gres['playback 200'].rps / res['playback 200'].rps:.0%} (no keep-alive: a connection per request)",
        f"EPG bodies over the {len(vs)} viewers: {min(sizes):,}-{max(sizes):,} B, mean {epg_bytes:,} B"
        f" (= floor EPG-size, and the 1-token viewer's {sizes[vs.index(one[0])]:,} B); profile"
        f" {found['small']['profile']} B, playback {found['small']['playback']} B, refusal"
        f" {found['small']['refusal']} B",
        f"naive EPG bytes equal the warm EPG's for {sum(found['naive_same'])}/{len(found['naive_same'])}"
        " viewers checked",
        f"wrk -t1, keep-alive, {c} connections ({NAIVE_CONNECTIONS} for naive), {s:g} s after {WARMUP_S} s"
        f" unrecorded; requests rotate over {len(vs)} viewer tokens (random, fixed seed, entitlement stable for"
        f" {STABLE_S // 60} min), each request built once in the Lua init and sent round-robin",
        "ratio: req/s over the floor with the same body size class (EPG-size for EPG rows, 2 KB for the rest),"
        " same server and config; LOCAL_PROFILES rows use the default sweep's floors",
        f"best of {ROUNDS}: every max-throughput figure is the better of {ROUNDS} passes (repeated runs here differ"
        " by up to ~15%); on/off pairs alternate two servers; 50% rows: throttled to half that max by a wrk"
        f" delay() think time calibrated by a {CALIBRATE_S} s run",
        f"granian: {' '.join(web.SERVER_FLAGS)} (config.web, as the Procfile); gunicorn: sync, 2 workers;"
        f" {args.profiles} profiles; 2 cores shared by the servers and wrk",
    ]
    if any(r[6].endswith("*") for r in rows):
        notes.append(f"* another benchmark or test run overlapped this measurement {ATTEMPTS} times running")
    header = ("server", "config", "endpoint", "tokens", "conns", "load", "req/s", "p50 ms", "p99 ms", "ratio")
    common.write_report("api", "API benchmark", rows, header, notes)
