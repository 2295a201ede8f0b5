"""Rows for tests that no trigger or signal announces (bulk loads, quiet changes)."""
from django.db import connection, transaction


def bulk_profiles(catalogue, n, plan=None):
    """n profiles in EU-WEST on fibra (and a subscription each when plan is given), committed,
    without per-row events; returns their ids."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")
        cur.execute(
            "INSERT INTO core_profile (region_id, isp_id, version) SELECT %s, %s, 1 FROM generate_series(1, %s)"
            " RETURNING id",
            [catalogue["eu"].pk, catalogue["fibra"].pk, n],
        )
        ids = [r[0] for r in cur.fetchall()]
        if plan:
            cur.execute(
                "INSERT INTO core_subscription (profile_id, plan_id, starts_at)"
                " SELECT unnest(%s::bigint[]), %s, now() - interval '1 day'",
                [ids, catalogue[plan].pk],
            )
    return ids


def quiet_isp_change(profile_id, isp_id):
    """A committed change no trigger or signal announces."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")
        cur.execute("UPDATE core_profile SET isp_id = %s WHERE id = %s", [isp_id, profile_id])
