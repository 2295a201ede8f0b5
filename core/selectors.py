"""Reads from Postgres into builder facts. Versions are read before the rows they cover,
so the data a rebuild sees is never older than the version it writes."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db import connection

from .builders import ChannelFacts, ProfileFacts, ProgrammeFacts
from .entitlement import LicenceRule, SubscriptionTerm


def _rows(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def db_now() -> datetime:
    """Postgres' clock: every rebuild, wherever it runs, dates its entries and decides time
    windows by the one clock that also orders the writes, not by its host's."""
    return _rows("SELECT now()")[0][0]


_PROFILE_HEADS = """SELECT p.id, p.version, r.code, i.code, r.timezone, r.version
             FROM core_profile p JOIN core_region r ON r.id = p.region_id JOIN core_isp i ON i.id = p.isp_id
            WHERE p.id = ANY(%s)"""
_PROFILE_SUBS = """SELECT s.profile_id, pl.code, s.starts_at, s.expires_at
             FROM core_subscription s JOIN core_plan pl ON pl.id = s.plan_id
            WHERE s.profile_id = ANY(%s)"""


def _result_sets(sql: str, params=()) -> list[list[tuple]]:
    """Every result of several `;`-separated statements sent in one round trip (as one
    implicit transaction: one snapshot, one now()). Django's psycopg cursors bind
    parameters client-side, which allows this; OPTIONS server_side_binding would not."""
    with connection.cursor() as cur:
        cur.execute(sql, params)
        out = [cur.fetchall()]
        while cur.nextset():
            out.append(cur.fetchall())
        return out


def _profile_facts(heads: list[tuple], sub_rows: list[tuple]) -> dict[int, ProfileFacts]:
    subs: dict[int, list[SubscriptionTerm]] = defaultdict(list)
    for profile_id, plan, starts_at, expires_at in sub_rows:
        subs[profile_id].append(SubscriptionTerm(plan, starts_at, expires_at))
    return {
        pid: ProfileFacts(pid, version, region, isp, tz, tuple(subs.get(pid, ())), region_version)
        for pid, version, region, isp, tz, region_version in heads
    }


def profile_facts(ids: Iterable[int]) -> dict[int, ProfileFacts]:
    """Facts for the given profile ids; ids with no row are simply absent."""
    return profile_facts_now(ids)[1]


def profile_facts_now(ids: Iterable[int]) -> tuple[datetime, dict[int, ProfileFacts]]:
    """Postgres' clock and the facts for the given profile ids, in one round trip (a
    rebuild task's only query when every id still has its row)."""
    # A Python list, not a '{...}' literal: psycopg's dumper costs ~0.8 us an id, but
    # Postgres ran this query 1.6-2x slower on the literal (measured at 500 to 20,000 ids).
    ids = sorted(set(ids))
    now, heads, sub_rows = _result_sets(f"SELECT now(); {_PROFILE_HEADS}; {_PROFILE_SUBS}", [ids, ids])
    return now[0][0], _profile_facts(heads, sub_rows)


_PROFILE_HEADS_BETWEEN = _PROFILE_HEADS.replace("p.id = ANY(%s)", "p.id >= %s AND p.id < %s")
_PROFILE_SUBS_BETWEEN = _PROFILE_SUBS.replace("s.profile_id = ANY(%s)", "s.profile_id >= %s AND s.profile_id < %s")


def profile_facts_between(lo: int, hi: int) -> tuple[datetime, dict[int, ProfileFacts]]:
    """As profile_facts_now, for every profile with lo <= id < hi (a warm-up's span): two
    range scans instead of an id list, 4-5 us a profile against 9-10 here."""
    now, heads, sub_rows = _result_sets(
        f"SELECT now(); {_PROFILE_HEADS_BETWEEN}; {_PROFILE_SUBS_BETWEEN}", [lo, hi, lo, hi]
    )
    return now[0][0], _profile_facts(heads, sub_rows)


def deleted_versions(kind: str, ids: Iterable[int]) -> dict[int, int]:
    """The last version of each deleted row (kind: 'profile' or 'channel'); 0 when not
    recorded (never existed, deleted with triggers off, or pruned)."""
    ids = sorted(set(ids))
    if not ids:
        return {}
    found = dict(_rows("SELECT row_id, version FROM prewarm_deleted WHERE kind = %s AND row_id = ANY(%s)", [kind, ids]))
    return {i: found.get(i, 0) for i in ids}


def region_heads(ids: Iterable[int] | None = None) -> list[tuple[int, str, str, int]]:
    """(id, code, timezone, version) of the given regions, or of all."""
    if ids is None:
        return _rows("SELECT id, code, timezone, version FROM core_region ORDER BY id")
    return _rows("SELECT id, code, timezone, version FROM core_region WHERE id = ANY(%s) ORDER BY id", [list(ids)])


def region_by_code(code: str) -> tuple[int, str, str, int] | None:
    rows = _rows("SELECT id, code, timezone, version FROM core_region WHERE code = %s", [code])
    return rows[0] if rows else None


def channels() -> list[ChannelFacts]:
    plans: dict[int, set[str]] = defaultdict(set)
    for channel_id, plan in _rows(
        "SELECT cp.channel_id, p.code FROM core_channel_plans cp JOIN core_plan p ON p.id = cp.plan_id"
    ):
        plans[channel_id].add(plan)
    return [
        ChannelFacts(cid, code, name, number, frozenset(plans.get(cid, ())))
        for cid, code, name, number in _rows("SELECT id, code, name, number FROM core_channel ORDER BY number")
    ]


def licences(region_ids: Iterable[int]) -> list[LicenceRule]:
    rows = _rows(
        """SELECT c.code, r.code, l.isp_mode, l.valid_from, l.valid_until,
                  COALESCE(array_agg(i.code) FILTER (WHERE i.code IS NOT NULL), '{}')
             FROM core_licence l
             JOIN core_channel c ON c.id = l.channel_id
             JOIN core_region r ON r.id = l.region_id
             LEFT JOIN core_licence_isps li ON li.licence_id = l.id
             LEFT JOIN core_isp i ON i.id = li.isp_id
            WHERE l.region_id = ANY(%s)
            GROUP BY l.id, c.code, r.code""",
        [list(region_ids)],
    )
    return [LicenceRule(ch, rg, mode, frozenset(isps), vf, vu) for ch, rg, mode, vf, vu, isps in rows]


def channel_heads(ids: Iterable[int]) -> list[tuple[ChannelFacts, int]]:
    """(facts, epg_version) for the given channel ids (plans omitted: EPG needs none)."""
    rows = _rows("SELECT id, code, name, number, epg_version FROM core_channel WHERE id = ANY(%s)", [list(ids)])
    return [(ChannelFacts(cid, code, name, number), version) for cid, code, name, number, version in rows]


def programmes(channel_ids: Iterable[int], start: datetime, end: datetime) -> dict[int, list[ProgrammeFacts]]:
    out: dict[int, list[ProgrammeFacts]] = defaultdict(list)
    for cid, *rest in _rows(
        """SELECT channel_id, starts_at, ends_at, title, synopsis, genre, age_rating
             FROM core_programme
            WHERE channel_id = ANY(%s) AND starts_at < %s AND ends_at > %s
            ORDER BY channel_id, starts_at""",
        [list(channel_ids), end, start],
    ):
        out[cid].append(ProgrammeFacts(*rest))
    return out


def timezones() -> list[str]:
    return [tz for (tz,) in _rows("SELECT DISTINCT timezone FROM core_region ORDER BY 1")]


def region_classes(region_id: int, now: datetime) -> list[tuple[str, list[str]]]:
    """(isp, active plans) of every entitlement class with a viewer in the region, from
    Postgres: the slow, exact answer when Redis lost the region's class set."""
    return _rows(
        """SELECT DISTINCT isp, plans FROM (
             SELECT i.code AS isp,
                    COALESCE(array_agg(DISTINCT pl.code ORDER BY pl.code)
                             FILTER (WHERE pl.code IS NOT NULL), '{}') AS plans
               FROM core_profile p
               JOIN core_isp i ON i.id = p.isp_id
               LEFT JOIN core_subscription s ON s.profile_id = p.id AND s.starts_at <= %s
                    AND (s.expires_at IS NULL OR s.expires_at > %s)
               LEFT JOIN core_plan pl ON pl.id = s.plan_id
              WHERE p.region_id = %s
              GROUP BY p.id, i.code) per_profile""",
        [now, now, region_id],
    )


def profile_ids(lo: int | None = None, hi: int | None = None) -> list[int]:
    """Profile ids in id order, all or those in [lo, hi) (the verifier streams them in batches)."""
    if lo is None and hi is None:
        return [pid for (pid,) in _rows("SELECT id FROM core_profile ORDER BY id")]
    return [
        pid
        for (pid,) in _rows(
            "SELECT id FROM core_profile WHERE id >= %s AND id < %s ORDER BY id",
            [lo if lo is not None else -(2**63), hi if hi is not None else 2**63 - 1],
        )
    ]


def profile_id_bounds() -> tuple[int, int] | None:
    """(lowest, highest) profile id, or None when there is no profile."""
    lo, hi = _rows("SELECT min(id), max(id) FROM core_profile")[0]
    return None if lo is None else (lo, hi)


def sample_profile_ids(n: int) -> list[int]:
    """Up to n profile ids picked at random, in id order."""
    return sorted(pid for (pid,) in _rows("SELECT id FROM core_profile ORDER BY random() LIMIT %s", [n]))


def channel_ids() -> list[int]:
    return [cid for (cid,) in _rows("SELECT id FROM core_channel ORDER BY id")]


def _scope_filter(region_ids: list[int] | None, ids: list[int] | None) -> tuple[str, list]:
    """SQL and parameters selecting profiles by region or id; None for both: every profile."""
    if region_ids is None and ids is None:
        return "TRUE", []
    return "(region_id = ANY(%s) OR id = ANY(%s))", [region_ids or [], ids or []]


def profile_span_counts(span: int, region_ids: list[int] | None = None, ids: list[int] | None = None) -> dict[int, int]:
    """id // span -> how many profiles of that span the scope selects (a warm-up's chunks)."""
    where, params = _scope_filter(region_ids, ids)
    return dict(_rows(f"SELECT id / %s, count(*) FROM core_profile WHERE {where} GROUP BY 1", [span, *params]))


def scoped_profile_ids(
    lo: int, hi: int, region_ids: list[int] | None = None, ids: list[int] | None = None
) -> list[int]:
    """Ids in [lo, hi) that the scope selects, in id order."""
    where, params = _scope_filter(region_ids, ids)
    return [
        pid
        for (pid,) in _rows(f"SELECT id FROM core_profile WHERE id >= %s AND id < %s AND {where} ORDER BY id",
                            [lo, hi, *params])
    ]


def channel_ids_between(lo: int, hi: int) -> list[int]:
    return [cid for (cid,) in _rows("SELECT id FROM core_channel WHERE id >= %s AND id < %s ORDER BY id", [lo, hi])]
