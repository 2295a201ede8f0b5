"""Cache verification: rebuild entries from Postgres in memory, compare them with Redis, repair.

Every family is checked in two passes. The first finds candidates; after the grace period
(PREWARM_VERIFY_GRACE_SECONDS) each candidate is rebuilt from Postgres and read from Redis
again, and only what still differs is drift: a change committed a moment ago may not have
reached Redis yet. The verdicts themselves are pure functions in core.drift.
"""
from __future__ import annotations

import itertools
import logging
import multiprocessing
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connections

from . import drift, keys, metrics, redis_conn, selectors, services
from .builders import Entry, epoch_ms
from .drift import CLASS, EPG, MISSING, ORPHAN, PROFILE, Finding, Report
from .entitlement import EntitlementClass

log = logging.getLogger("prewarm.verify")

BATCH = 5_000  # profiles per query set and Redis round trip
READ_BATCH = 1_000  # class and fragment entries per Redis round trip
SCAN_COUNT = 10_000
LOG_LIMIT = 1_000  # drift lines logged per family and kind in one run; the rest are counted
GAP_LIMIT = 50_000  # ids without a row checked per slice (a sparse id range is not walked id by id)

ClassTuple = tuple[str, str, tuple[str, ...]]  # (region, isp, plans): picklable across processes


def grace_seconds() -> float:
    return float(settings.PREWARM_VERIFY_GRACE_SECONDS)


def _sleep(seconds: float) -> None:
    """Waiting out the grace period (tests replace it to make a change land meanwhile)."""
    if seconds > 0:
        time.sleep(seconds)






def _hgetall(entry_keys: list[str]) -> dict[str, drift.Stored]:
    out: dict[str, drift.Stored] = {}
    for i in range(0, len(entry_keys), READ_BATCH):
        chunk = entry_keys[i : i + READ_BATCH]
        pipe = redis_conn.client().pipeline(transaction=False)
        for key in chunk:
            pipe.hgetall(key)
        out.update(zip(chunk, pipe.execute(raise_on_error=False)))
    return out


def _scan(pattern: str) -> Iterable[bytes]:
    return redis_conn.client().scan_iter(match=pattern, count=SCAN_COUNT)


# -- profiles --------------------------------------------------------------------------------


@dataclass
class ProfileBatch:
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    classes: set[ClassTuple] = field(default_factory=set)


_profile_names: tuple[str, ...] | None = None  # version, deleted, then a profile entry's fields


def _profile_reads(entry_keys: list[str], names: tuple[str, ...]) -> list[tuple]:
    # HMGET of the fields a build writes (and `deleted`): what the API reads. A field nobody
    # writes is seen only when something else differs too (then the whole hash is read); an
    # HLEN per entry to catch it alone cost ~10% of the pass.
    return [("HMGET", key, *names) for key in entry_keys]


def check_profiles(ids: list[int], grace: float | None = None, compare: bool = True) -> ProfileBatch:
    """Rebuild these profiles in memory and compare them with Redis (ids without a row: their
    entry must be absent or a tombstone). With `grace`, this is the re-check: entries whose
    valid_until passed less than `grace` ago are not drift yet."""
    global _profile_names
    entry_keys = [keys.profile_key(pid) for pid in ids] if compare else []
    names = _profile_names
    # Ask Redis first (with the field names the last batch's entries had) and build meanwhile.
    sent = redis_conn.Sent(_profile_reads(entry_keys, names)) if compare and ids and names else None
    try:
        now = selectors.db_now()
        entries, classes = services.profile_entries(ids, now)
        batch = ProfileBatch(len(ids), classes={_class_tuple(c) for c in set(classes.values())})
        if not compare or not ids:
            return batch
        if entries:
            _profile_names = ("version", "deleted", *next(iter(entries.values())).fields)
        if sent is None:
            names = _profile_names or ("version", "deleted")
            sent = redis_conn.Sent(_profile_reads(entry_keys, names))
        replies = sent.replies()
    finally:
        if sent is not None:
            sent.close()
    field_names = names[2:]
    slow: list[int] = []
    for n, (pid, values) in enumerate(zip(ids, replies)):
        entry = entries.get(pid)
        if isinstance(values, Exception):  # not a hash
            slow.append(n)
        elif entry is None:
            if values[1] is None and any(v is not None for v in values):  # live, and the row is gone
                slow.append(n)
        elif values[0] is None and all(v is None for v in values):
            batch.findings.append(Finding(PROFILE, MISSING, entry_keys[n], (), "no entry"))
        elif (
            values[1] is not None
            or values[0] != b"%d" % entry.version
            or values[2:] != list(entry.fields.values())
            or tuple(entry.fields) != field_names
        ):
            slow.append(n)
    if slow:
        stored = _hgetall([entry_keys[n] for n in slow])
        for n in slow:
            key = entry_keys[n]
            if found := drift.judge(PROFILE, key, entries.get(ids[n]), stored[key]):
                batch.findings.append(found)
    if grace is not None:
        now_s = now.timestamp()
        batch.findings = [f for f in batch.findings if not drift.in_flight(f, now_s, grace)]
    return batch


def _child_init() -> None:
    # Forked children must not share the parent's sockets.
    connections.close_all()
    redis_conn.reset()


def _check_batch(job: tuple[list[int], float | None, bool]) -> ProfileBatch:
    return check_profiles(*job)


def _batches(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]


def _run_batches(
    ids: list[int],
    *,
    jobs: int,
    grace: float | None,
    compare: bool,
    on_batch: Callable[[ProfileBatch], None],
    meanwhile: Callable[[], None] | None = None,
) -> None:
    """check_profiles over `ids` in batches, in `jobs` forked processes when there is enough
    work; `meanwhile` runs in this process while the children work."""
    work = [(b, grace, compare) for b in _batches(ids)]
    if jobs <= 1 or len(work) < 2:
        if meanwhile:
            meanwhile()
        for job in work:
            on_batch(_check_batch(job))
        return
    failure: list[BaseException] = []

    def guarded():
        try:
            meanwhile()
        except BaseException as exc:  # raised below, in the calling thread
            failure.append(exc)

    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs, initializer=_child_init) as pool:
        results = pool.imap_unordered(_check_batch, work)
        side = threading.Thread(target=guarded, name="verify-scan", daemon=True) if meanwhile else None
        if side:
            side.start()
        for batch in results:
            on_batch(batch)
        if side:
            side.join()
    if failure:
        raise failure[0]


# -- classes ---------------------------------------------------------------------------------


def _class_tuple(cls: EntitlementClass) -> ClassTuple:
    return cls.region, cls.isp, tuple(sorted(cls.plans))


def needed_classes() -> set[ClassTuple]:
    """Every class with a viewer now, from Postgres (the slow, exact answer: ~1 s a region at 1M
    profiles; --all takes the classes from its own profile builds instead)."""
    now = selectors.db_now()
    out: set[ClassTuple] = set()
    for head in selectors.region_heads():
        out.update((head[1], isp, tuple(sorted(plans))) for isp, plans in selectors.region_classes(head[0], now))
    return out


def _class_entries(classes: Iterable[ClassTuple], now: datetime) -> dict[str, tuple[EntitlementClass, Entry]]:
    by_region: dict[str, list[EntitlementClass]] = defaultdict(list)
    for region, isp, plans in classes:
        by_region[region].append(EntitlementClass(region, isp, frozenset(plans)))
    out: dict[str, tuple[EntitlementClass, Entry]] = {}
    for head in selectors.region_heads():
        wanted = by_region.get(head[1])
        if wanted:
            built = services.class_entries(head, wanted, now)
            out.update((keys.class_key(c.id), (c, built[c.id])) for c in wanted)
    return out


def check_classes(
    needed: set[ClassTuple], stored_keys: set[str] | None, grace: float | None = None
) -> tuple[int, list[Finding]]:
    """Compare the class entries `needed` must have, and (when `stored_keys` lists the class
    keys Redis holds) report the others as orphans."""
    now = selectors.db_now()
    expected = _class_entries(needed, now)
    todo = sorted(set(expected) | (stored_keys or set()))
    stored = _hgetall(todo)
    findings = []
    for key in todo:
        if key in expected:
            found = drift.judge(CLASS, key, expected[key][1], stored[key])
        else:
            found = drift.orphan(CLASS, key, stored[key], "no viewer is in this class")
        if found:
            findings.append(found)
    if grace is not None:
        findings = [f for f in findings if not drift.in_flight(f, now.timestamp(), grace)]
    return len(todo), findings


# -- EPG fragments ---------------------------------------------------------------------------


def _fragment_keys_in_redis() -> set[str]:
    return {k.decode() for k in _scan(keys.epg_fragment_pattern()) if keys.epg_fragment_of(k) is not None}


def check_fragments(
    wanted: set[str] | None, stored_keys: set[str], grace: float | None = None
) -> tuple[int, list[Finding]]:
    """Compare the fragments every kept (time zone, day) needs (only the `wanted` keys, when
    given) and judge the fragment keys Redis holds that nothing needs."""
    now = selectors.db_now()
    windows = services.epg_windows(now)
    kept = {(tz, day.isoformat()) for tz, day in windows}
    zones = {tz for tz, _ in windows}
    channel_ids = selectors.channel_ids()
    if wanted is not None:
        parsed = [keys.epg_fragment_of(k) for k in wanted | stored_keys]
        channel_ids = sorted({p[2] for p in parsed if p})
    expected, present = services.epg_entries(channel_ids, windows, now)
    todo = sorted((set(expected) if wanted is None else wanted & set(expected)) | stored_keys)
    stored = _hgetall(todo)
    findings = []
    for key in todo:
        if key in expected:
            found = drift.judge(EPG, key, expected[key], stored[key])
        else:
            tz, day, channel_id = keys.epg_fragment_of(key)
            if (tz, day) in kept and channel_id not in present:
                found = drift.judge(EPG, key, None, stored[key])
            else:
                why = "a time zone no region uses" if tz not in zones else "a day outside the kept window"
                found = drift.orphan(EPG, key, stored[key], why)
        if found:
            findings.append(found)
    if grace is not None:
        findings = [f for f in findings if not drift.in_flight(f, now.timestamp(), grace)]
    return len(todo), findings


# -- a run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What a run covers: every profile and Redis' profile keys (the default), `sample` random
    profiles, or exactly the profile `ids` (a rolling slice); with or without every class (and
    so orphan classes) and every fragment."""

    sample: int | None = None
    ids: tuple[int, ...] | None = None  # exactly these profile ids (the rolling slice)
    all_classes: bool = True  # every class with orphans (else: the checked profiles' classes)
    all_fragments: bool = True

    @property
    def name(self) -> str:
        if self.ids is not None:
            return f"slice of {len(self.ids)} profile ids"
        return "all" if self.sample is None else f"sample {self.sample}"


def run(
    families: Iterable[str] = drift.FAMILIES,
    scope: Scope = Scope(),
    *,
    repair: bool = False,
    jobs: int = 1,
    grace: float | None = None,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> Report:
    """Verify the chosen families over `scope`; with `repair`, rewrite what drifted."""
    started = time.monotonic()
    families = tuple(f for f in drift.FAMILIES if f in set(families))
    grace = grace_seconds() if grace is None else grace
    report = Report(scope.name, families)
    candidates: dict[str, list[Finding]] = {f: [] for f in families}
    seen_at = 0.0  # when the last candidate was found: the grace counts from there

    # Profiles: every id (and Redis' profile keys whose row is gone), a sample, or a slice.
    want_profiles = PROFILE in families
    need_profile_pass = want_profiles or (CLASS in families and not scope.all_classes)
    classes_seen: set[ClassTuple] = set()
    if need_profile_pass:
        if scope.ids is not None:
            ids = list(scope.ids)
        elif scope.sample is not None:
            ids = selectors.sample_profile_ids(scope.sample)
        else:
            ids = selectors.profile_ids()
        in_redis: set[int] = set()
        done = 0

        def scan_profiles():
            in_redis.update(keys.profile_ids_of(_scan(keys.profile_key_pattern())))

        def on_batch(batch: ProfileBatch):
            nonlocal done, seen_at
            done += batch.checked
            classes_seen.update(batch.classes)
            if batch.findings:
                candidates.get(PROFILE, []).extend(batch.findings)
                seen_at = time.monotonic()
            on_progress(done, len(ids))

        full = scope.sample is None and scope.ids is None and want_profiles
        _run_batches(ids, jobs=jobs, grace=None, compare=want_profiles, on_batch=on_batch,
                     meanwhile=scan_profiles if full else None)
        if full:
            gone = sorted(in_redis.difference(ids))
            for batch in _batches(gone):
                result = check_profiles(batch)
                candidates[PROFILE].extend(result.findings)
                seen_at = time.monotonic() if result.findings else seen_at
            report.checked[PROFILE] = len(ids) + len(gone)
        elif want_profiles:
            report.checked[PROFILE] = len(ids)
        del ids, in_redis

    # Classes: the ones the profiles are in (all of them: with orphans), or the sampled ones'.
    class_keys: set[str] | None = None
    class_of: dict[str, ClassTuple] = {}  # class key -> the class, for the repair
    if CLASS in families:
        if scope.all_classes:
            needed = classes_seen if (need_profile_pass and scope.sample is None and scope.ids is None) \
                else needed_classes()
            class_keys = {k.decode() for k in _scan(keys.class_key_pattern()) if keys.class_id_of(k) is not None}
        else:
            needed = classes_seen
        class_of.update((keys.class_key(_class_id(c)), c) for c in needed)
        report.checked[CLASS], found = check_classes(needed, class_keys)
        report.orphans_checked[CLASS] = class_keys is not None
        if found:
            candidates[CLASS] = found
            seen_at = time.monotonic()

    # Fragments: every one, or a random sample of those needed or held.
    if EPG in families:
        stored_keys = _fragment_keys_in_redis()
        wanted = None
        if not scope.all_fragments and scope.sample is not None:
            now = selectors.db_now()
            every = {
                keys.epg_fragment_key(tz, day.isoformat(), cid)
                for cid in selectors.channel_ids()
                for tz, day in services.epg_windows(now)
            }
            pool = sorted(every | stored_keys)
            picked = set(random.sample(pool, min(scope.sample, len(pool))))
            wanted, stored_keys = picked & every, picked & stored_keys
        report.checked[EPG], found = check_fragments(wanted, stored_keys)
        report.orphans_checked[EPG] = True
        if found:
            candidates[EPG] = found
            seen_at = time.monotonic()
    if PROFILE in families:
        report.orphans_checked[PROFILE] = True  # a profile entry is never an orphan: stale or right

    # The re-check, after the grace period: only what still differs is drift.
    if any(candidates.values()):
        _sleep(seen_at + grace - time.monotonic())
        report.findings = _recheck(candidates, grace, jobs, class_of)
    _log(report.findings)
    if repair and report.findings:
        report.repaired, report.refused = _repair(report.findings, class_of)
    elif repair:
        report.repaired = {}
    report.seconds = time.monotonic() - started
    return report


def _recheck(
    candidates: dict[str, list[Finding]], grace: float, jobs: int, class_of: dict[str, ClassTuple]
) -> list[Finding]:
    out: list[Finding] = []
    if candidates.get(PROFILE):
        ids = sorted({keys.profile_id_of(f.key) for f in candidates[PROFILE]})
        _run_batches(ids, jobs=jobs if len(ids) > 4 * BATCH else 1, grace=grace, compare=True,
                     on_batch=lambda batch: out.extend(batch.findings))
    if candidates.get(CLASS):
        # Against the exact classes in use now: a candidate orphan may have won a viewer.
        ids = {keys.class_id_of(f.key) for f in candidates[CLASS]}
        needed = {c for c in needed_classes() if _class_id(c) in ids}
        class_of.update((keys.class_key(_class_id(c)), c) for c in needed)
        out.extend(check_classes(needed, {f.key for f in candidates[CLASS]}, grace)[1])
    if candidates.get(EPG):
        wanted = {f.key for f in candidates[EPG]}
        out.extend(check_fragments(wanted, wanted, grace)[1])
    return out


def _log(findings: list[Finding]) -> None:
    logged: dict[tuple[str, str], int] = defaultdict(int)
    for f in findings:
        n = logged[f.family, f.kind] = logged[f.family, f.kind] + 1
        if n <= LOG_LIMIT:
            differs = f" ({', '.join(f.fields)})" if f.fields else ""
            log.warning("drift: %s %s %s%s: %s", f.family, f.kind, f.key, differs, f.why)
    for (family, kind), n in sorted(logged.items()):
        if n > LOG_LIMIT:
            log.warning("drift: %d more %s %s entries not logged", n - LOG_LIMIT, family, kind)


def count(report: Report) -> None:
    """Add the drift a run found to prewarm_verify_drift_total (zeros too: the series exist)."""
    metrics.STORE.add(
        (metrics.VERIFY_DRIFT, (family, kind), n)
        for family, kinds in report.counts().items()
        for kind, n in kinds.items()
    )


# -- repair ----------------------------------------------------------------------------------


def _repair(
    findings: list[Finding], class_of: dict[str, ClassTuple]
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Rewrite what drifted through the versioned store (compare-and-set), tombstone entries of
    rows that are gone, delete orphans. Returns (repaired per family and kind, refused per family)."""
    repaired = {family: dict.fromkeys(drift.KINDS, 0) for family in drift.FAMILIES}
    refused = dict.fromkeys(drift.FAMILIES, 0)
    by_family: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        by_family[f.family].append(f)
    client = redis_conn.client()
    # A value that is not a hash would make the compare-and-set fail: it is no entry at all.
    not_hashes = [f.key for f in findings if f.fields == ("type",)]
    if not_hashes:
        client.unlink(*not_hashes)
    now = selectors.db_now()
    built = epoch_ms(now)
    store = services.store()

    def tally(family: str, items: list[tuple[Finding, str, Entry]]) -> None:
        results = store.write_many(((key, entry) for _, key, entry in items), built)
        for (f, _, _), ok in zip(items, results):
            if ok:
                repaired[family][f.kind] += 1
            else:
                refused[family] += 1

    if found := by_family.get(PROFILE):
        by_id = {keys.profile_id_of(f.key): f for f in found}
        for ids in _batches(sorted(by_id)):
            entries, _ = services.profile_entries(ids, now)
            tally(PROFILE, [(by_id[pid], keys.profile_key(pid), e) for pid, e in entries.items()])
            gone = [pid for pid in ids if pid not in entries]
            last = selectors.deleted_versions("profile", gone)
            store.tombstone_many(((keys.profile_key(pid), last[pid]) for pid in gone), built)
            for pid in gone:
                repaired[PROFILE][by_id[pid].kind] += 1
    if found := by_family.get(CLASS):
        orphans = [f for f in found if f.kind == ORPHAN]
        rest = {f.key: f for f in found if f.kind != ORPHAN}
        if rest:
            wanted = {class_of[key] for key in rest if key in class_of}
            built_classes = _class_entries(wanted, now)
            pipe = client.pipeline(transaction=False)
            for cls, _ in built_classes.values():
                # The region's set is what a licence change rebuilds: keep the class in it.
                pipe.sadd(keys.region_classes_key(cls.region), services.class_member(cls))
            pipe.execute()
            tally(CLASS, [(rest[key], key, entry) for key, (_, entry) in built_classes.items()])
        _delete(orphans, repaired[CLASS])
    if found := by_family.get(EPG):
        orphans = [f for f in found if f.kind == ORPHAN]
        rest = {f.key: f for f in found if f.kind != ORPHAN}
        if rest:
            windows = services.epg_windows(now)
            channel_ids = sorted({keys.epg_fragment_of(k)[2] for k in rest})
            expected, _ = services.epg_entries(channel_ids, windows, now)
            tally(EPG, [(f, key, expected[key]) for key, f in rest.items() if key in expected])
            gone = [key for key in rest if key not in expected]
            last = selectors.deleted_versions("channel", [keys.epg_fragment_of(k)[2] for k in gone])
            store.tombstone_many(((key, last[keys.epg_fragment_of(key)[2]]) for key in gone), built)
            for key in gone:
                repaired[EPG][rest[key].kind] += 1
        _delete(orphans, repaired[EPG])
    families = {f.family for f in findings}
    return (
        {family: kinds for family, kinds in repaired.items() if family in families},
        {family: n for family, n in refused.items() if family in families},
    )


def _class_id(c: ClassTuple) -> str:
    return EntitlementClass(c[0], c[1], frozenset(c[2])).id


def _delete(orphans: list[Finding], tally: dict[str, int]) -> None:
    if orphans:
        tally[ORPHAN] += redis_conn.client().unlink(*[f.key for f in orphans])


# -- the rolling verification (beat) ---------------------------------------------------------


def verify_slice(*, slices: int, repair: bool = True) -> tuple[drift.Slice | None, Report | None]:
    """Verify the next of `slices` slices of the profile id range (and their classes); the
    slice that starts a cycle also checks every class and fragment. Records the drift found,
    and the time when a cycle completes."""
    r = redis_conn.client()
    raw = r.hget(keys.verify_cursor_key(), "next")
    cursor = int(raw) if raw and raw.isdigit() else None
    bounds = selectors.profile_id_bounds()
    current = drift.next_slice(cursor, bounds, slices)
    if current is None:
        return None, None
    ids = selectors.profile_ids(current.start, current.end)
    # Ids in the slice without a row: their entry must be absent or a tombstone.
    present = set(ids)
    top = min(current.end, bounds[1] + 1)
    gaps = list(itertools.islice((i for i in range(current.start, top) if i not in present), GAP_LIMIT))
    scope = Scope(ids=tuple(sorted([*ids, *gaps])), all_classes=current.first, all_fragments=current.first)
    families = drift.FAMILIES if current.first else (PROFILE, CLASS)
    report = run(families, scope, repair=repair)
    count(report)
    state = {"next": current.end}
    if current.first:
        state["started"] = int(time.time())
    r.hset(keys.verify_cursor_key(), mapping=state)
    if current.last:
        metrics.STORE.set([(metrics.VERIFY_LAST_CYCLE, (), time.time())])
    return current, report

