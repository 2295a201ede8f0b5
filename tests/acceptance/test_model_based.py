"""Model-based: random sequences of writes through every kind of writer, interleaved with
faults, against the real pipeline (relay, worker, web processes). After each sequence the
pipeline settles, and then the cache equals a fresh build from Postgres and the API answers
what a fresh build answers. Postgres is the model: whatever the writes did, it holds the truth.

CI runs PREWARM_MODEL_EXAMPLES sequences (default below); `make soak` runs the long one.
"""
import contextlib
import os
import time
from datetime import timedelta

import orjson
import pytest
import requests
from django.db import connection, transaction
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from api import degraded, tokens
from api.entries import profile_body
from core import drift, keys, redis_conn, selectors, verify
from core.models import Channel, Isp, Licence, OutboxEvent, Plan, Profile, Programme, Region, Subscription
from tests.processes import WebServer, stop_or_fail
from workers import coalesce, edges, events, relay, tasks
from workers.app import INVALIDATE_QUEUE, app

pytestmark = pytest.mark.django_db(transaction=True)

CI_EXAMPLES = int(os.environ.get("PREWARM_MODEL_EXAMPLES", "500"))
SOAK_EXAMPLES = int(os.environ.get("PREWARM_SOAK_EXAMPLES", "20000"))
STEPS = 8
PROGRESS_EVERY = 100
# Long enough for the sweeper's path: a queued marker goes stale after QUEUED_STALE_MS.
SETTLE_TIMEOUT = coalesce.QUEUED_STALE_MS / 1000 + 40
VISIBILITY_TIMEOUT = 20  # the worker's: a dead worker's tasks come back within a settle
TIMEZONES = ["Europe/London", "America/New_York", "Asia/Tokyo", "UTC"]
# Names a cached entry embeds; rules swap between two spellings of each.
RENAMES = {"region": ("EU-WEST", "EU-W2"), "isp": ("fibra", "fibra2"), "plan": ("sports", "sport")}


def _rows(statement, params=()):
    with connection.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall()


def sql(statement, params=()):
    """A statement from outside Django (no signal), as another service would send it."""
    with relay.connect() as conn:
        conn.execute(statement, params)


# -- settling ---------------------------------------------------------------------------


def _busy(redis_client) -> list[str]:
    reasons = []
    if OutboxEvent.objects.exists():
        reasons.append("outbox rows")
    with app.connection_for_write() as conn:
        broker = conn.default_channel.client
        if broker.llen(INVALIDATE_QUEUE):
            reasons.append("queued tasks")
        if broker.hlen("unacked"):  # taken by the worker (running, prefetched or waiting for an ETA)
            reasons.append("unacknowledged tasks")
    for kind in events.KINDS:
        if redis_client.hlen(keys.dirty_key(kind)):
            reasons.append(f"{kind} markers")
    if edges.due(time.time()):  # a lost edge task has no marker: its ids wait in the edge set
        reasons.append("time edges due and not started")
    return reasons


def _in_flight() -> list:
    """(task, id, args, eta, retries) of every task the broker still holds: what settling waits on."""
    out = []
    with app.connection_for_write() as conn:
        broker = conn.default_channel.client
        raw = broker.lrange(INVALIDATE_QUEUE, 0, 20) + list(broker.hvals("unacked"))[:20]
    for item in raw:
        message = orjson.loads(item)
        message = message[0] if isinstance(message, list) else message  # unacked: [message, exchange, key]
        headers = message["headers"]
        out.append((headers["task"], headers["id"], headers.get("argsrepr"), headers.get("eta"),
                    headers.get("retries")))
    return out


def settle(redis_client, revive=lambda: None):
    """Until nothing is in flight twice in a row; runs the sweeper as beat would if markers linger.
    `revive` restarts a worker that died, as a supervisor would."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    quiet, swept_at = 0, time.monotonic()
    while quiet < 2:
        revive()
        busy = _busy(redis_client)
        quiet = 0 if busy else quiet + 1
        if busy and time.monotonic() - swept_at > 5:  # beat's sweeper, more often here
            tasks.sweep_dirty.apply()
            swept_at = time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"the pipeline did not settle in {SETTLE_TIMEOUT:.0f}s: {busy}; {_in_flight()}")
        time.sleep(0.02)


# -- the comparison with a fresh build ----------------------------------------------------


def cache_drift() -> list[str]:
    """What `cache_verify --all` finds, orphans aside: entries nobody reads (a class after a
    rename, fragments of a zone no longer used) are left for its --repair."""
    report = verify.run(grace=0)
    found = [f for f in report.findings if f.kind != drift.ORPHAN]
    if not found:
        return []
    # What was stored, against the clock: enough to tell a late edge from a lost one.
    now = selectors.db_now().timestamp()
    stamps = redis_conn.client().pipeline()
    for f in found:
        stamps.hmget(f.key, "version", "built_at", "valid_until")
    return [f"{f.family} {f.kind} {f.key}: {f.fields} stored (version, built_at, valid_until) {held}, now {now:.3f}"
            for f, held in zip(found, stamps.execute())]


def api_drift(server, profile_ids) -> list[str]:
    """The web process's answers against what a fresh build answers."""
    found = []
    for pid in profile_ids:
        auth = {"Authorization": f"Bearer {tokens.issue(pid, ttl=600)}", "Connection": "close"}
        response = requests.get(server.url + "/api/v1/me/profile", headers=auth, timeout=10)
        profile, cls = degraded.viewer(pid, time.time())
        if profile.deleted:
            if response.status_code != 404:
                found.append(f"api profile {pid}: {response.status_code}, deleted in Postgres")
            continue
        expected = orjson.loads(profile_body(profile, cls))
        got = orjson.loads(response.content) if response.status_code == 200 else {}
        expected.pop("built_at"), got.pop("built_at", None)
        if got != expected:
            found.append(f"api profile {pid}: {response.status_code} {response.text} != {expected}")
    return found


# -- the machine -----------------------------------------------------------------------------


PICK = st.integers(0, 1_000_000)


def _nth(items, n):
    return items[n % len(items)] if items else None


def _all(model):
    return list(model.objects.order_by("id"))


def make_machine(ctx):
    c = ctx["catalogue"]

    class Pipeline(RuleBasedStateMachine):
        @initialize()
        def start(self):
            self.profile_ids = set(Profile.objects.values_list("id", flat=True))

        # Every draw is made before a rule runs, from fixed ranges: Hypothesis requires the
        # same choices whatever Postgres holds; `_nth` maps a draw onto the rows there are.
        def _profile(self, n):
            return _nth(list(Profile.objects.order_by("id").values_list("id", flat=True)), n)

        def _now(self):
            return selectors.db_now()

        # writers -------------------------------------------------------------------------
        @rule(r=PICK, i=PICK, plans=st.sets(st.sampled_from(["basic", "premium", "sports", "sport"])))
        def orm_create_with_subscriptions(self, r, i, plans):
            p = Profile.objects.create(region=_nth(_all(Region), r), isp=_nth(_all(Isp), i))
            self.profile_ids.add(p.pk)
            for plan in Plan.objects.filter(code__in=plans):
                Subscription.objects.create(profile=p, plan=plan, starts_at=self._now() - timedelta(days=1))

        @rule(n=PICK, i=PICK)
        def orm_save(self, n, i):
            if (pid := self._profile(n)) is not None:
                p = Profile.objects.get(pk=pid)
                p.isp = _nth(_all(Isp), i)
                p.save()

        @rule(n=PICK)
        def orm_delete(self, n):
            if (pid := self._profile(n)) is not None:
                Profile.objects.filter(pk=pid).delete()

        @rule(n=PICK, hours=st.integers(-48, 48))
        def queryset_update_subscriptions(self, n, hours):
            if (pid := self._profile(n)) is not None:
                ends = self._now() + timedelta(hours=hours)
                Subscription.objects.filter(profile_id=pid, starts_at__lt=ends).update(expires_at=ends)

        @rule(count=st.integers(1, 3), plan=PICK)
        def bulk_create(self, count, plan):
            ps = Profile.objects.bulk_create([Profile(region=c["us"], isp=c["cheap"]) for _ in range(count)])
            self.profile_ids.update(p.pk for p in ps)
            Subscription.objects.bulk_create(
                [Subscription(profile=p, plan=_nth(_all(Plan), plan), starts_at=self._now() - timedelta(hours=1))
                 for p in ps]
            )

        @rule(n=PICK, r=PICK)
        def raw_profile_update(self, n, r):
            if (pid := self._profile(n)) is not None:
                sql("UPDATE core_profile SET region_id = %s WHERE id = %s", [_nth(_all(Region), r).pk, pid])

        @rule(n=PICK, plan=PICK, insert=st.booleans())
        def raw_subscription_insert_delete(self, n, plan, insert):
            if (pid := self._profile(n)) is None:
                return
            if insert:
                sql("INSERT INTO core_subscription (profile_id, plan_id, starts_at) VALUES (%s, %s, now())",
                    [pid, _nth(_all(Plan), plan).pk])
            else:
                sql("DELETE FROM core_subscription WHERE id IN"
                    " (SELECT id FROM core_subscription WHERE profile_id = %s LIMIT 1)", [pid])

        @rule(seconds=st.floats(0.2, 1.0), n=PICK, plan=PICK, what=st.sampled_from(["starts", "ends", "licence"]),
              ch=PICK, r=PICK)
        def window_crossing_the_present(self, seconds, n, plan, what, ch, r):
            """A subscription or licence that starts or ends a moment from now."""
            at = self._now() + timedelta(seconds=seconds)
            pid = self._profile(n)
            if what == "starts" and pid is not None:
                Subscription.objects.create(profile_id=pid, plan=_nth(_all(Plan), plan), starts_at=at)
            elif what == "ends" and pid is not None:
                Subscription.objects.create(profile_id=pid, plan=_nth(_all(Plan), plan),
                                            starts_at=at - timedelta(days=1), expires_at=at)
            else:
                Licence.objects.create(channel=_nth(_all(Channel), ch), region=_nth(_all(Region), r), valid_until=at)

        @rule(n=PICK, r=PICK, same_transaction=st.booleans())
        def delete_and_insert_again_with_the_same_id(self, n, r, same_transaction):
            if (pid := self._profile(n)) is None:
                return
            with transaction.atomic() if same_transaction else contextlib.nullcontext():
                Profile.objects.filter(pk=pid).delete()
                with connection.cursor() as cur:
                    cur.execute("INSERT INTO core_profile (id, region_id, isp_id) VALUES (%s, %s, %s)",
                                [pid, _nth(_all(Region), r).pk, c["cable"].pk])

        @rule(ch=PICK, plan=PICK, add_plan=st.booleans(), i=PICK, add_isp=st.booleans())
        def m2m(self, ch, plan, add_plan, i, add_isp):
            channel = _nth(_all(Channel), ch)
            (channel.plans.add if add_plan else channel.plans.remove)(_nth(_all(Plan), plan))
            if (lic := Licence.objects.filter(channel=channel).order_by("id").first()) is not None:
                (lic.isps.add if add_isp else lic.isps.remove)(_nth(_all(Isp), i))

        @rule(table=st.sampled_from(["core_channel_plans", "core_licence_isps"]),
              what=st.sampled_from(["insert", "update", "delete"]), row=PICK, a=PICK, b=PICK)
        def raw_join_tables(self, table, what, row, a, b):
            """Links between channels and plans, licences and ISPs, by SQL (no signal)."""
            left, right, left_rows, right_rows = {
                "core_channel_plans": ("channel_id", "plan_id", _all(Channel), _all(Plan)),
                "core_licence_isps": ("licence_id", "isp_id", _all(Licence), _all(Isp)),
            }[table]
            x, y = _nth(left_rows, a), _nth(right_rows, b)
            links = [r for (r,) in _rows(f"SELECT id FROM {table} ORDER BY id")]
            if what == "insert" and x is not None:
                sql(f"INSERT INTO {table} ({left}, {right}) VALUES (%s, %s) ON CONFLICT DO NOTHING", [x.pk, y.pk])
            elif what == "update" and links:
                # A link moved to another plan / ISP (never onto one that exists: unique).
                sql(f"UPDATE {table} t SET {right} = %s WHERE t.id = %s AND NOT EXISTS"
                    f" (SELECT 1 FROM {table} o WHERE o.{left} = t.{left} AND o.{right} = %s)",
                    [y.pk, _nth(links, row), y.pk])
            elif what == "delete" and links:
                sql(f"DELETE FROM {table} WHERE id = %s", [_nth(links, row)])

        # Rarely: an emptied table leaves little for the other rules to change.
        @rule(table=st.sampled_from(["core_subscription", "core_programme", "core_licence_isps",
                                     "core_channel_plans"] + [None] * 12))
        def truncate(self, table):
            if table is not None:
                sql(f"TRUNCATE {table}")

        @rule(ch=PICK, hours=st.integers(-20, 40), what=st.sampled_from(["insert", "update", "delete"]),
              title=st.sampled_from(["Match", "News", "Film"]))
        def programmes(self, ch, hours, what, title):
            channel = _nth(_all(Channel), ch)
            start = self._now() + timedelta(hours=hours)
            if what == "insert":
                Programme.objects.create(channel=channel, starts_at=start, ends_at=start + timedelta(hours=1),
                                         title=title)
            elif what == "update":
                sql("UPDATE core_programme SET title = CASE WHEN title LIKE '%%!' THEN rtrim(title, '!')"
                    " ELSE title || '!' END WHERE id IN"
                    " (SELECT id FROM core_programme WHERE channel_id = %s LIMIT 1)", [channel.pk])
            else:
                sql("DELETE FROM core_programme WHERE id IN"
                    " (SELECT id FROM core_programme WHERE channel_id = %s LIMIT 1)", [channel.pk])

        @rule(r=PICK, tz=st.sampled_from(TIMEZONES))
        def time_zone_change(self, r, tz):
            sql("UPDATE core_region SET timezone = %s WHERE id = %s", [tz, _nth(_all(Region), r).pk])

        @rule(what=st.sampled_from(sorted(RENAMES)))
        def rename(self, what):
            a, b = RENAMES[what]
            table = {"region": "core_region", "isp": "core_isp", "plan": "core_plan"}[what]
            sql(f"UPDATE {table} SET code = CASE code WHEN %s THEN %s ELSE %s END WHERE code IN (%s, %s)",
                [a, b, a, a, b])

        @rule(ch=PICK)
        def channel_change(self, ch):
            # A toggle, so a long run never outgrows the column.
            sql("UPDATE core_channel SET name = CASE WHEN name LIKE '%%.' THEN rtrim(name, '.') ELSE name || '.' END"
                " WHERE id = %s", [_nth(_all(Channel), ch).pk])

        # faults --------------------------------------------------------------------------
        @rule()
        def web_data_connections_closed(self):
            """Never stale, 1: a web process's data connection closes (a read timeout, the
            server's idle `timeout`, a killed client) while its invalidation connection stays."""
            for client in ctx["redis"].client_list():
                if "t" in client["flags"]:  # reads with CLIENT TRACKING on
                    ctx["redis"].client_kill_filter(_id=client["id"])

        @rule(ms=st.integers(50, 500))
        def redis_paused(self, ms):
            """Redis (cache and broker here) answers nobody for a moment."""
            ctx["redis"].execute_command("CLIENT", "PAUSE", ms, "ALL")

        @rule()
        def redis_connections_closed(self):
            """Every client's Redis connections closed under it: the relay, the worker and the
            web processes reconnect. The worker's consumer puts the tasks it had taken back in
            the queue as its channel closes (workers.broker.QoS); one that BRPOP took off the
            queue as the connection died, and whose reply never came, is lost until the
            sweeper re-queues its ids (dirty markers older than QUEUED_STALE_MS): minutes of
            settling, so only in the long run."""
            if ctx["long"]:
                ctx["redis"].client_kill_filter(_type="normal", skipme=True)

        @rule()
        def postgres_backends_terminated(self):
            sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend' AND pid <> %s", [ctx["own_backend"]])

        def teardown(self):
            settle(ctx["redis"], ctx["revive"])
            ids = sorted(self.profile_ids | set(Profile.objects.values_list("id", flat=True)))
            problems = cache_drift()
            live = sorted(Profile.objects.values_list("id", flat=True))[-3:]
            problems += api_drift(ctx["server"], live + [i for i in ids if i not in live][-1:])
            assert not problems, "\n".join(problems[:20])
            ctx["examples"] += 1
            if ctx["examples"] % PROGRESS_EVERY == 0:
                print(f"model-based: {ctx['examples']} sequences so far", flush=True)  # a soak runs for hours

    return Pipeline


@pytest.fixture
def pipeline(catalogue, redis_client, purge_queues, start_proc, service_env, tmp_path):
    # The catalogue's own events settle first: every example starts from a quiet pipeline.
    start_proc("relay")
    # Tasks a dead worker held come back after this (rebuilds take milliseconds here).
    worker_env = {"PREWARM_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)}
    workers = [start_proc("worker", **worker_env)]
    server = WebServer(service_env, tmp_path / "granian.log")

    def revive():
        """In the long run only: Celery's prefork pool can die when its broker connection is
        closed under it (README, Status: UnpicklingError, an upstream bug); production runs
        workers under a supervisor that restarts them, and so does this. Drift is still drift."""
        if ctx["long"] and not workers[-1].running():
            ctx["restarts"] += 1
            print(f"model-based: worker died ({workers[-1].tail(3)}); restart {ctx['restarts']}", flush=True)
            workers.append(start_proc(f"worker-{ctx['restarts']}", **worker_env))

    try:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            own = cur.fetchone()[0]
        ctx = {"catalogue": catalogue, "redis": redis_client, "server": server, "own_backend": own,
               "examples": 0, "long": False, "revive": revive, "restarts": 0}
        settle(redis_client)
        yield ctx
    finally:
        stop_or_fail([server.proc])


def _run(ctx, examples):
    run_state_machine_as_test(
        make_machine(ctx),
        # Postgres and Redis carry over from one sequence to the next, so a sequence does not
        # replay: report the first failure as it happened instead of shrinking it.
        settings=settings(max_examples=examples, stateful_step_count=STEPS, deadline=None, database=None,
                          phases=[Phase.generate], suppress_health_check=list(HealthCheck)),
    )
    print(f"model-based: {ctx['examples']} sequences without drift; workers restarted {ctx['restarts']} times")


def test_the_cache_converges_to_a_fresh_build(pipeline):
    _run(pipeline, CI_EXAMPLES)
    assert pipeline["examples"] >= CI_EXAMPLES


@pytest.mark.soak
def test_the_cache_converges_to_a_fresh_build_long(pipeline):
    pipeline["long"] = True
    _run(pipeline, SOAK_EXAMPLES)
    assert pipeline["examples"] >= SOAK_EXAMPLES
